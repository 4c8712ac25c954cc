"""How unsure a personal reward model is about one rater's taste: samples of that rater's reward.

Active selection asks for the pair whose outcome the model is least sure of. With a personal
reward model (:mod:`rlcomposer.preferences.personal_reward`) the rater's reward is
``score_r(m) = s_pop(m) + w_r . phi(m)``, and two things about it are uncertain:

* the population part: the ensemble's K members ``s_k`` stand for draws of ``s_pop``;
* the rater's weights: their Laplace posterior is ``N(w_r, C_r)`` (the covariance the model
  keeps per rater).

:func:`rater_member_scores` returns K x S joint samples of the rater's reward, member ``k``
with weight draw ``s``::

    score_r,k,s(m) = s_k(m) + (w_r + L_r z_s) . phi_k(m)

where ``L_r L_r' = C_r``, the ``z_s`` are fixed standard-normal draws in antithetic pairs
(``z`` and ``-z``, so the samples' mean is exactly the rater's reward without pessimism) and
``phi_k`` is ``phi`` with the population-score entry (``population_feature``) read from member
``k`` (the rater's reward is linear in ``s_pop``: a rater who turns the population's taste round
turns its members round too, and a rater who ignores it does not care where its members
disagree). The variance of P(A beats B) = sigmoid(score(A) - score(B)) across these samples is
then the disagreement of the rater's own predictive distribution, as the population ensemble's
member variance is for everyone. The draws depend only on ``seed`` and the rater's row, so the
same melody always gets the same samples (what a per-melody score cache needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import Melody

PersonalRewardModel = Any
"""A :class:`~rlcomposer.preferences.personal_reward.PersonalRewardModel` (not imported: it imports this module)."""

WEIGHT_SAMPLES = 8
"""Draws of a rater's weights per ensemble member (in antithetic pairs)."""


def weight_draws(covariance: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """``samples`` offsets ``L z`` of the weights, ``[S, D]``, with ``L L' = covariance`` (a
    zero covariance: zeros); antithetic (``z``, ``-z``) pairs, so they average to exactly 0."""
    covariance = np.asarray(covariance, dtype=np.float64)
    size = covariance.shape[0]
    if samples < 1 or not np.any(covariance):
        return np.zeros((max(samples, 1), size))
    values, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))  # root @ root.T == covariance
    half = np.random.default_rng(seed).standard_normal(((samples + 1) // 2, size))
    draws = np.concatenate([half, -half])[:samples] if samples > 1 else np.zeros((1, size))
    return draws @ root.T


def rater_member_scores(model: PersonalRewardModel, melodies: Sequence[Melody | np.ndarray], rater: str,
                        samples: int = WEIGHT_SAMPLES, seed: int = 0) -> np.ndarray:
    """Joint samples of ``rater``'s reward of each melody, ``[K * S, N]`` (module docstring): each
    population member with each of ``samples`` draws of the rater's weights from their Laplace
    posterior. A rater the model fitted without answers (weights and covariance 0) gets the
    population's members, ``[K, N]``."""
    index = model.rater_index(rater)
    members = model.population.member_scores(melodies)  # [K, N]
    if model.answers[index] == 0:
        return members
    _, phi = model.base_rewards(melodies)  # [N, D]
    draws = model.weights[index] + weight_draws(model.covariances[index], samples, seed + index)  # [S, D]
    personal = draws @ phi.T  # [S, N]: w_s . phi(m), with the population entry at s_pop
    rows = members[:, None, :] + personal[None, :, :]  # [K, S, N]
    if model.config.population_feature:  # that entry read from member k: + w_s0 * (s_k - s_pop)
        rows = rows + draws[None, :, :1] * (members - members.mean(axis=0))[:, None, :]
    return rows.reshape(-1, rows.shape[-1])


def uncertainty_rater(model: PersonalRewardModel, name: str) -> tuple[str | None, str | None]:
    """The model's rater whose uncertainty stands for the rater called ``name`` (matched as
    :meth:`~rlcomposer.preferences.personal_reward.PersonalRewardModel.rater_index` does) and
    None; or, for a rater it does not know or fitted without answers, None (the population's
    uncertainty) and the sentence that says so."""
    try:
        index = model.rater_index(name)
    except RLComposerError:
        return None, (f"rater {name!r} is not in {model.name} (they joined after it was trained): "
                      "their pairs are chosen by the population's uncertainty")
    if model.answers[index] == 0:
        return None, (f"rater {name!r} had no answers when {model.name} was trained: "
                      "their pairs are chosen by the population's uncertainty")
    return model.raters[index], None


__all__ = ["WEIGHT_SAMPLES", "rater_member_scores", "uncertainty_rater", "weight_draws"]
