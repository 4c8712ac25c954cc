"""DPO and IPO losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlcomposer.rl.dpo import DPOConfig, preference_loss

RATIO_A = torch.tensor([1.0, -0.5])  # log π(a) − log ref(a) per comparison
RATIO_B = torch.tensor([0.0, 0.5])
TARGETS = torch.tensor([1.0, 0.5])   # A won; a tie


def test_dpo_loss_by_hand():
    # margins 1 and −1, times β = 0.5: logits 0.5 and −0.5
    won = math.log(1 + math.exp(-0.5))                                   # −log σ(0.5)
    tie = 0.5 * (math.log(1 + math.exp(0.5)) + math.log(1 + math.exp(-0.5)))  # a tie asks for equal ratios
    loss = preference_loss(RATIO_A, RATIO_B, TARGETS, DPOConfig(beta=0.5, loss="dpo"))
    assert float(loss) == pytest.approx((won + tie) / 2, abs=1e-6)  # 0.599077


def test_ipo_loss_by_hand():
    # (margin − (2y − 1)/(2β))² with β = 0.5: (1 − 1)² for the win, (−1 − 0)² for the tie
    loss = preference_loss(RATIO_A, RATIO_B, TARGETS, DPOConfig(beta=0.5, loss="ipo"))
    assert float(loss) == pytest.approx(0.5, abs=1e-6)


def test_a_larger_margin_for_the_winner_lowers_the_dpo_loss():
    config = DPOConfig(beta=0.1)
    near = preference_loss(torch.tensor([0.1]), torch.tensor([0.0]), torch.tensor([1.0]), config)
    far = preference_loss(torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([1.0]), config)
    assert float(far) < float(near) < math.log(2)
