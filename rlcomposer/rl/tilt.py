"""The tilted prior: the distribution a KL-regularised tuner aims at.

Maximising E_π[r] − β·KL(π‖p) is maximised by π*(x) = p(x)·e^{r(x)/β}/Z (the prior *tilted*
by the reward). On M melodies drawn from the prior its KL to the prior is estimated by
self-normalised importance weights w_i ∝ e^{r_i/β}: KL = Σ w_i·log(M·w_i). That KL falls as β
grows, so the β whose tilt has a given KL is found by bisection: the β a KL-controlled tuner
should end near, and so a good β to start it from (:attr:`~rlcomposer.rl.tuning.TuneConfig.kl_beta_start`).
"""

from __future__ import annotations

import math

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.preferences.reward_functions import RewardFunction, score_melodies
from rlcomposer.prior.model import MelodyCondition, MelodyPrior
from rlcomposer.prior.registry import PriorModel

MIN_TILT_SAMPLES = 256
"""Fewest prior melodies a tilt is estimated on (at 3 nats it lives on about 1% of them)."""


def tilt_weights(scores: np.ndarray, beta: float) -> np.ndarray:
    """The self-normalised weights e^{r/β}/Σ e^{r/β} that make melodies drawn from the prior, scored
    ``scores``, a sample of the prior tilted by them at ``beta``."""
    logits = np.asarray(scores, dtype=np.float64) / beta
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def tilt_kl(scores: np.ndarray, beta: float) -> float:
    """KL(tilt‖prior) in nats of the prior tilted by ``scores`` (rewards of melodies drawn from
    the prior) at ``beta``, by self-normalised importance weights (at most log M)."""
    weights = tilt_weights(scores, beta)
    nonzero = weights[weights > 0]
    return float(np.sum(nonzero * np.log(nonzero * len(weights))))


def _check_showable(num_samples: int, kl_target: float) -> None:
    """Refuse a KL a sample of ``num_samples`` cannot show (at 0.9 log M nearly every weight is on one melody)."""
    if kl_target >= 0.9 * math.log(num_samples):
        raise RLComposerError(f"{num_samples} prior melodies cannot show a tilt at {kl_target:g} nats: "
                              f"use more (at least {math.ceil(math.exp(kl_target / 0.9)):,})")


def tilt_beta_for_kl(scores: np.ndarray, kl_target: float, low: float = 1e-4, high: float = 1e4) -> float:
    """The β at which the prior tilted by ``scores`` has KL ``kl_target`` to it (bisection in log β).

    Refuses a target the sample cannot show (at or above log M: every weight on one melody).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not (math.isfinite(kl_target) and kl_target > 0):
        raise RLComposerError(f"a tilt's KL target must be above 0, got {kl_target}")
    _check_showable(len(scores), kl_target)
    if np.ptp(scores) == 0:
        raise RLComposerError("the reward gives every prior melody the same score: nothing to tilt by")
    log_low, log_high = math.log(low), math.log(high)
    for _ in range(60):  # KL falls as β grows
        middle = (log_low + log_high) / 2
        if tilt_kl(scores, math.exp(middle)) > kl_target:
            log_low = middle
        else:
            log_high = middle
    return math.exp((log_low + log_high) / 2)


def tilt_beta(reward_fn: RewardFunction, prior: MelodyPrior, condition: MelodyCondition, kl_target: float,
              num_samples: int, rng: np.random.Generator, name: str = "reward") -> float:
    """The β of :func:`tilt_beta_for_kl` on ``num_samples`` melodies the prior writes in ``condition``."""
    if num_samples < MIN_TILT_SAMPLES:
        raise RLComposerError(f"tilt_samples must be at least {MIN_TILT_SAMPLES}, got {num_samples}")
    _check_showable(num_samples, kl_target)  # before drawing and scoring anything
    melodies = PriorModel(prior, "prior").sample(num_samples, condition.num_steps, rng, condition=condition)
    return tilt_beta_for_kl(score_melodies(reward_fn, melodies, name), kl_target)
