"""The quantile reward of variational best-of-N (vBoN, Amini et al. 2025): log F̂(r).

Best-of-N sampling from a reference model p draws melodies with probability
``p(y) · N · F(r(y))^(N−1)``, where F is the reward's cumulative distribution
under p. That is the optimum of the KL-regularised objective
``E_π[log F(r(y))] − β · KL(π‖p)`` with ``β = 1/(N − 1)``, so PPO on the reward
``log F(r)`` at that β aims at the best-of-N distribution itself, at its KL
``log N − (N − 1)/N``. F is estimated from M melodies sampled from the prior
under the run's condition (metre, mode, length) and scored by the reward; a
melody's quantile is its rank among them, interpolated between neighbours and
kept off 0 and 1 (the i-th smallest at ``(i + 1)/(M + 1)``), so the reward is bounded:
no melody earns more than ``log((M + ½)/(M + 1))`` ≈ 0, however extreme its raw score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.reward_functions import RewardFunction, score_melodies
from rlcomposer.prior.model import MelodyCondition, MelodyPrior

MIN_REFERENCE_SAMPLES = 16
"""Fewest prior melodies a quantile reward may be estimated from."""


class QuantileReward:
    """``log F̂(reward(melody))``: the reward's log-quantile among prior melodies (a reward function)."""

    def __init__(self, reward_fn: RewardFunction, reference_scores: np.ndarray, name: str = "reward"):
        scores = np.sort(np.asarray(reference_scores, dtype=np.float64).ravel())
        if scores.size < MIN_REFERENCE_SAMPLES:
            raise RLComposerError(f"a quantile reward needs at least {MIN_REFERENCE_SAMPLES} reference "
                                  f"samples, got {scores.size}")
        if not np.isfinite(scores).all():
            raise RLComposerError(f"the {name}'s scores of the reference melodies are not all finite")
        self.reward_fn = reward_fn
        self.reference_scores = scores
        self.name = name

    @property
    def num_reference(self) -> int:
        return int(self.reference_scores.size)

    def quantiles(self, raw_scores: np.ndarray) -> np.ndarray:
        """F̂ of raw reward values, in (0, 1).

        The i-th smallest reference score sits at level (i + 1)/(M + 1); a value between two
        reference scores is interpolated linearly, a value tied with several takes their mean
        level, and values below or above all of them take ½/(M + 1) or (M + ½)/(M + 1)."""
        reference = self.reference_scores
        size = reference.size
        values = np.asarray(raw_scores, dtype=np.float64)
        lower = np.searchsorted(reference, values, side="left")
        upper = np.searchsorted(reference, values, side="right")
        ranks = np.where(upper > lower, (lower + upper - 1) / 2.0 + 1.0, lower.astype(np.float64))
        between = (upper == lower) & (lower > 0) & (lower < size)
        if between.any():
            k = lower[between]
            low, high = reference[k - 1], reference[k]
            ranks[between] = k + (values[between] - low) / (high - low)
        ranks = np.where((upper == lower) & (lower == 0), 0.5, ranks)
        ranks = np.where((upper == lower) & (lower == size), size + 0.5, ranks)
        return ranks / (size + 1.0)

    def score_batch(self, melodies: Sequence[Melody]) -> np.ndarray:
        return np.log(self.quantiles(score_melodies(self.reward_fn, melodies, self.name)))

    def __call__(self, melody: Melody) -> float:
        return float(self.score_batch([melody])[0])


@torch.inference_mode()
def fit_quantile_reward(reward_fn: RewardFunction, prior: MelodyPrior, condition: MelodyCondition,
                        num_samples: int, generator: torch.Generator, name: str = "reward") -> QuantileReward:
    """A :class:`QuantileReward` whose F̂ is estimated on ``num_samples`` melodies of the prior."""
    from rlcomposer.music.keys import Key

    if num_samples < MIN_REFERENCE_SAMPLES:
        raise RLComposerError(f"quantile_samples must be at least {MIN_REFERENCE_SAMPLES}, got {num_samples}")
    tokens = prior.sample(num_samples, condition.num_steps, generator=generator, condition=condition)
    melodies = [Melody(row, {}, condition.metre, Key("C", condition.mode)) for row in np.asarray(tokens)]
    return QuantileReward(reward_fn, score_melodies(reward_fn, melodies, name), name)
