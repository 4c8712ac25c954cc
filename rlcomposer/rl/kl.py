"""KL(policy‖prior) per melody: exact for a policy, closed form for best-of-N.

Both sides of every equal-KL comparison use these two functions.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from rlcomposer.prior.model import MelodyCondition, MelodyPrior


@torch.inference_mode()
def kl_to_prior_per_melody(policy_actor: MelodyPrior, prior: MelodyPrior, tokens: torch.Tensor,
                           condition: MelodyCondition | None = None) -> torch.Tensor:
    """Exact Σ_t KL(policy(·|s_t) || prior(·|s_t)) along each melody, shape ``[N]``
    (both told ``condition``: the melodies' metre and mode, default 4/4 major)."""
    policy_log = F.log_softmax(policy_actor.sequence_logits(tokens, condition), dim=-1)
    prior_log = F.log_softmax(prior.sequence_logits(tokens, condition), dim=-1)
    return (policy_log.exp() * (policy_log - prior_log)).sum(dim=-1).sum(dim=-1)


def best_of_n_kl(n: int) -> float:
    """KL of best-of-N sampling from its base model, ``log N - (N - 1) / N`` nats per melody.

    (Stiennon et al. 2020; an upper bound that is tight for continuous rewards.)
    """
    return float(math.log(n) - (n - 1) / n)
