"""How a personal reward model's per-rater weights are fitted: :class:`PersonalRewardConfig`.

Its settings, with the measurements their defaults were chosen by; stored with the model
(``config.json``) and read back by
:func:`~rlcomposer.preferences.personal_reward.load_personal_reward_model`. The model itself is
:mod:`rlcomposer.preferences.personal_reward`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcomposer.preferences.reward_model_config import RewardModelError
from rlcomposer.validation import SEED, between, check_config


@dataclass(frozen=True)
class PersonalRewardConfig:
    """How the per-rater weights of a personal reward model are fitted. Stored with the model."""

    penalty: float = 30.0
    """L2 strength pulling each rater's weights to 0 (the population model): the prior's weight
    against the rater's answers. Chosen on the panel's choosing half (``experiments/personal_eval.py
    --members choose --penalties 1,3,10,30,100``, seed 0): 30 ranked fresh pairs best at 25 and 50
    noisy answers per rater (mean accuracy 0.691 and 0.735; 1, 3, 10, 100: 0.660-0.688 and
    0.695-0.725), and at 10 answers kept 10 of 12 raters within 0.02 of the population, as 100 did
    (1: 5, 3: 6, 10: 8)."""
    population_feature: bool = True
    """Give the population's own score as a base reward beside the ensemble's inputs (a rater may
    then scale or reverse the population's taste)."""
    quadratic: bool = False
    """Add each standardised input's square (minus 1) to the base rewards: a rater may then like a
    descriptor in a band (an ideal value) rather than only more or less of it (D = 1 + 2F). Off: on
    the choosing half it ranked fresh pairs worse at every penalty tried (best 0.704 at 50 answers)."""
    folds: int = 5
    """Folds of the per-rater held-out report (k-fold over each rater's comparisons); 0: no report."""
    min_alone_comparisons: int = 5
    """Fewest usable comparisons for the rater-alone model of the report (fewer: ``n/a``)."""
    trunk_hidden: int = 0
    """Width of a shared trunk (GELU units on the standardised inputs) learnt from every rater's
    answers at once, each rater with its own weights over it; its outputs join the base rewards
    (a taste shared by several raters that is not linear in the descriptors). 0: no trunk. Off: on
    the choosing half 8 units did no better (0.718-0.729 at 50 answers with trunk_penalty 3; 0.652-0.666
    with 0.1)."""
    trunk_steps: int = 300
    """Full-batch Adam steps of the trunk's training (with trunk_hidden)."""
    trunk_penalty: float = 0.1
    """L2 strength on the trunk's own weights while it trains (the raters' weights take ``penalty``)."""
    pessimism: float = 1.0
    """Scores are the personal reward less this many standard deviations of its personal part (the
    weights' Laplace posterior): melodies far from what the rater answered about count for less, so
    best-of-N does not run to where the rater's few answers say little. Chosen on the choosing half
    (``personal_eval.py --members choose --pessimism 0,0.5,1,2``, seed 0, best-of-54 at 50 answers):
    median win-rate against the prior 0.841 / 0.855 / 0.859 / 0.857, mean against best-of-54 from
    the pooled model 0.657 / 0.671 / 0.681 / 0.675. (The accuracy tables rank pairs by the mean.)"""
    shared_rounds: int = 0
    """Rounds of learning the prior's shape from every rater's weights (:func:`shared_precision`):
    0 keeps the plain penalty ``penalty * I``. 0: on the choosing half 1 and 3 rounds ranked fresh
    pairs worse at every answer count (0.727 and 0.716 at 50 answers, penalty 30)."""
    iterations: int = 50
    """Most Newton steps of each rater's fit (it converges in a handful)."""
    seed: int = 0
    """Fixes the folds of the per-rater report."""

    def __post_init__(self) -> None:
        check_config(self, {"penalty": between(1e-6, 1e9), "folds": between(0, 50, whole=True),
                            "min_alone_comparisons": between(5, 10**9, whole=True),
                            "iterations": between(1, 10_000, whole=True), "shared_rounds": between(0, 100, whole=True),
                            "trunk_hidden": between(0, 256, whole=True), "trunk_steps": between(1, 100_000, whole=True),
                            "trunk_penalty": between(0, 1e9), "pessimism": between(0, 100),
                            "seed": SEED})
        if self.folds == 1:
            raise RewardModelError(f"personal folds {self.folds} must be 0 (no report) or 2-50")


__all__ = ["PersonalRewardConfig"]
