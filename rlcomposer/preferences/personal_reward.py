"""A personal reward model: the population's reward, and each rater's own correction of it.

A listening study has many raters, and they disagree. :class:`PersonalRewardModel` keeps

* the **population** reward ensemble (:class:`~rlcomposer.preferences.ensemble.RewardEnsemble`,
  trained as ``reward train`` trains it, on everyone's answers), and
* per rater ``r`` a weight vector ``w_r`` over shared **base rewards** ``phi(melody)``: the
  population's score itself and the ensemble's standardised inputs (the musical descriptors,
  and the GRU summary when the ensemble reads one), so ``D = 1 + F`` numbers (``1 + 2F`` with
  ``quadratic``: their squares too; ``+ H`` with ``trunk_hidden``: the outputs of a small trunk
  trained on every rater's answers at once). Both are off by default (see their fields).

The rater's reward is ``score_r(m) = s_pop(m) + w_r . phi(m) - pessimism * sd_r(m)`` (``sd_r``:
the standard deviation of ``w_r . phi(m)`` under the weights' Laplace posterior; the ``population_feature``
entry of ``phi`` lets a rater turn the population's taste up, down, or round). ``w_r`` is
fitted by Bradley-Terry logistic regression on that rater's comparisons alone (ties 1/2, skips
ignored; star ratings are not used), with an L2 penalty ``penalty / 2 * |w_r|^2`` pulling it to
0, the population: a rater with few answers stays near the population model, one with many moves
as far as the answers say. A rater with no answers has ``w_r = 0`` (the population, said so by
:meth:`PersonalRewardModel.for_rater`). This is the shared-basis / per-user-weights form of
PReF and LoRe, with the population as the prior mean.

The penalty's default was chosen by measurement on the panel's *choosing* half (members 0-11,
``experiments/personal_eval.py --members choose --penalties ...``), never on the report half.

**Held-out report** (:func:`train_personal_reward_model`, ``folds`` >= 2): per rater, accuracy
against that rater's own answers of

* the population model: its cross-validated out-of-fold predictions (each comparison predicted
  by a population model that never saw it);
* a rater-alone model: ``train_reward_model`` on that rater's answers alone, its own
  cross-validated held-out accuracy (``n/a`` below ``min_alone_comparisons`` answers);
* the personal model: k-fold over the rater's comparisons, ``w_r`` fitted on the other folds,
  the base score of every comparison from the population's out-of-fold predictions (a trunk or a
  shared prior shape, when used, is learnt once on every answer: a small leak into the report).

Saved as one model directory of kind ``personal-reward-model``: the population ensemble in its
``population/`` folder (itself a reward-model directory), and ``model.pt`` holding
``rater_weights`` ``[R, D]`` beside ``config.json`` (the raters' names and answer counts, this
config) and ``metrics.json`` (the held-out table).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlcomposer.checkpoints import CONFIG_FILE, CheckpointError, read_model_dir, save_model_dir
from rlcomposer.config import ConfigError, config_from_dict
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.calibration import evaluate_pairs, sigmoid
from rlcomposer.preferences.choices import CHOICE_SCORE
from rlcomposer.preferences.ensemble import RewardEnsemble
from rlcomposer.preferences.labels import PairLabel, StarLabel, as_melody
from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig
from rlcomposer.preferences.personal_uncertainty import WEIGHT_SAMPLES, rater_member_scores
from rlcomposer.preferences.reward_model_config import RewardModelConfig, RewardModelError
from rlcomposer.preferences.reward_model_io import load_reward_model, save_reward_model
from rlcomposer.preferences.training import index_melodies, train_reward_model
from rlcomposer.prior.model import MelodyPrior

PERSONAL_KIND = "personal-reward-model"
POPULATION_DIR = "population"


def rater_key(name: str) -> str:
    """How rater names are matched: trimmed, one space between words, case-folded (as the store)."""
    return " ".join(str(name).split()).casefold()


# ----------------------------------------------------------------- fitting
def fit_rater_weights(base_delta: np.ndarray, feature_delta: np.ndarray, targets: np.ndarray,
                      penalty: float | np.ndarray, iterations: int = 50) -> np.ndarray:
    """The MAP weights ``w`` of P(A beats B) = sigmoid(base_delta + feature_delta . w) under an
    L2 penalty ``penalty / 2 * |w|^2`` (a Gaussian prior at 0; a ``[D, D]`` matrix ``P``:
    ``w . P w / 2``): damped Newton steps on the penalised cross-entropy (convex, so it
    converges). No comparisons: zeros."""
    base_delta = np.asarray(base_delta, dtype=np.float64)
    x = np.asarray(feature_delta, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    w = np.zeros(x.shape[1])
    if y.size == 0:
        return w
    precision = (np.asarray(penalty, dtype=np.float64) if np.ndim(penalty) == 2
                 else float(penalty) * np.eye(x.shape[1]))

    def loss(weights: np.ndarray) -> float:
        z = base_delta + x @ weights
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * weights @ precision @ weights)

    current = loss(w)
    for _ in range(iterations):
        p = sigmoid(base_delta + x @ w)
        gradient = x.T @ (p - y) + precision @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + precision
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-4:
            candidate = w - scale * step
            value = loss(candidate)
            if value <= current:
                break
            scale *= 0.5
        else:
            break
        done = current - value < 1e-10 * max(1.0, abs(current))
        w, current = candidate, value
        if done:
            break
    return w


def shared_precision(weights: np.ndarray, penalty: float) -> float | np.ndarray:
    """The prior precision learnt from the raters' weights ``[R, D]``: ``penalty * (tr S / D) * S^-1``
    with ``S = W^T W / R`` (plus 1% of its mean diagonal), so directions the raters disagree along
    are penalised less and the mean penalty stays about ``penalty``. Fewer than 2 raters: ``penalty``."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape[0] < 2:
        return float(penalty)
    second = weights.T @ weights / weights.shape[0]
    scale = float(np.trace(second)) / second.shape[0]
    if scale <= 0:
        return float(penalty)
    second += 0.01 * scale * np.eye(second.shape[0])
    return penalty * scale * np.linalg.inv(second)


def weight_covariance(base_delta: np.ndarray, feature_delta: np.ndarray, weights: np.ndarray,
                      penalty: float | np.ndarray) -> np.ndarray:
    """The Laplace approximation of the weights' posterior covariance at ``weights``: the inverse
    Hessian of the penalised cross-entropy, ``[D, D]``."""
    x = np.asarray(feature_delta, dtype=np.float64)
    precision = (np.asarray(penalty, dtype=np.float64) if np.ndim(penalty) == 2
                 else float(penalty) * np.eye(x.shape[1]))
    p = sigmoid(np.asarray(base_delta, dtype=np.float64) + x @ weights)
    return np.linalg.inv((x * (p * (1 - p))[:, None]).T @ x + precision)


# ------------------------------------------------------------------ model
class RaterReward:
    """One rater's reward from a personal model (a reward function: ``Melody -> float``, and
    ``score_batch``); ``rater`` None is the population's."""

    def __init__(self, model: PersonalRewardModel, rater: str | None):
        self.model, self.rater = model, rater
        self.name = f"{model.name} for {'the population' if rater is None else repr(rater)}"

    def score_batch(self, melodies: Sequence[Melody | np.ndarray]) -> np.ndarray:
        return self.model.score_batch(melodies, self.rater)

    def __call__(self, melody: Melody) -> float:
        return float(self.score_batch([melody])[0])


class PersonalRewardModel:
    """The population ensemble and per-rater weights over shared base rewards (module docstring).

    ``raters`` are every rater the model knows (those with no usable answers too, whose weights
    are 0: the population); ``answers`` their usable comparison counts."""

    def __init__(self, population: RewardEnsemble, raters: Sequence[str], answers: Sequence[int],
                 weights: np.ndarray, config: PersonalRewardConfig = PersonalRewardConfig(),  # noqa: B008
                 metrics: dict[str, Any] | None = None):
        weights = np.asarray(weights, dtype=np.float64).reshape(len(raters), -1)
        if len(set(raters)) != len(raters) or len(answers) != len(raters):
            raise RewardModelError("a personal reward model needs distinct rater names, one answer count each")
        self.population = population
        self.raters = tuple(str(r) for r in raters)
        self.answers = tuple(int(a) for a in answers)
        self.weights = weights
        self.config = config
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.name = "personal reward model"
        self.trunk: tuple[np.ndarray, np.ndarray] | None = None
        """The shared trunk's weights ``[F, H]`` and biases ``[H]`` (with ``trunk_hidden``)."""
        self.covariances = np.zeros((len(self.raters), weights.shape[1], weights.shape[1]))
        """Each rater's weights' posterior covariance ``[R, D, D]`` (Laplace; 0 without answers)."""
        self.fitted_covariances = self.covariances
        """The covariances of :meth:`fit_weights`'s last fit."""
        self.precision: float | np.ndarray = float(config.penalty)
        """The prior precision of the weights' last fit (a matrix after shared rounds)."""

    @property
    def base_size(self) -> int:
        """D: the number of base rewards."""
        features = int(self.population.heads.features)
        return (features * (2 if self.config.quadratic else 1) + int(self.config.population_feature)
                + self.config.trunk_hidden)

    def __repr__(self) -> str:
        return f"PersonalRewardModel({len(self.raters)} raters, D={self.base_size}, {self.population!r})"

    # ----------------------------------------------------------- raters
    def rater_index(self, rater: str) -> int:
        """The row of ``rater`` (matched trimmed and case-folded); an unknown name raises one line
        naming the raters it knows."""
        keys = [rater_key(r) for r in self.raters]
        if rater in self.raters:
            return self.raters.index(rater)
        if rater_key(rater) in keys:
            return keys.index(rater_key(rater))
        shown = ", ".join(self.raters[:20]) + (f" (and {len(self.raters) - 20} more)" if len(self.raters) > 20 else "")
        raise RewardModelError(f"{self.name} has no rater {rater!r}: it knows {shown or 'no raters'}")

    def for_rater(self, rater: str | None) -> tuple[RaterReward, str | None]:
        """The reward of ``rater`` (None: the population) and, when it falls back to the population
        (a rater it knows who had no usable answers), the sentence that says so."""
        if rater is None:
            return RaterReward(self, None), None
        index = self.rater_index(rater)
        name = self.raters[index]
        if self.answers[index] == 0:
            return RaterReward(self, name), (f"rater {name!r} had no answers when {self.name} was trained: "
                                             "melodies are scored by the population model")
        return RaterReward(self, name), None

    def without(self, rater: str) -> PersonalRewardModel:
        """A copy without ``rater``'s weights (its population part unchanged)."""
        index = self.rater_index(rater)
        keep = [i for i in range(len(self.raters)) if i != index]
        metrics = dict(self.metrics)
        if isinstance(metrics.get("per_rater"), list):
            metrics["per_rater"] = [row for row in metrics["per_rater"] if row.get("rater") != self.raters[index]]
        model = PersonalRewardModel(self.population, [self.raters[i] for i in keep],
                                    [self.answers[i] for i in keep], self.weights[keep], self.config, metrics)
        model.covariances, model.trunk = self.covariances[keep], self.trunk
        return model

    def fit_weights(self, comparisons: Sequence[PairLabel], penalty: float, base: tuple | None = None,
                    shared_rounds: int | None = None) -> np.ndarray:
        """Each known rater's weights ``[R, D]`` fitted on that rater's comparisons in
        ``comparisons`` with L2 strength ``penalty`` (skips ignored; no comparisons: 0). With
        ``shared_rounds`` (default: the config's), the penalty's shape is then learnt from every
        rater: ``P = penalty * (tr S / D) * S^-1`` with ``S`` the raters' weights' second moment
        (where raters disagree, the prior is looser), refitting that many times; the last ``P``
        is kept in :attr:`precision`."""
        rounds = self.config.shared_rounds if shared_rounds is None else shared_rounds
        usable = [c for c in comparisons if c.choice in CHOICE_SCORE]
        if base is None:
            rows, index_a, index_b, _ = index_melodies(usable)
            score, phi = self.base_rewards(rows)
        else:
            score, phi, rows, index_a, index_b = base
        targets = np.array([CHOICE_SCORE[c.choice] for c in usable], dtype=np.float64)
        chosen = {name: np.array([i for i, c in enumerate(usable) if c.rater == name], dtype=np.int64)
                  for name in self.raters}
        precision: float | np.ndarray = float(penalty)
        weights = np.zeros((len(self.raters), self.base_size))
        for round_ in range(rounds + 1):
            if round_:
                precision = shared_precision(weights[[i for i, r in enumerate(self.raters) if chosen[r].size]],
                                             penalty)
            for row, name in enumerate(self.raters):
                own = chosen[name]
                weights[row] = 0.0
                if own.size:
                    weights[row] = fit_rater_weights(score[index_a[own]] - score[index_b[own]],
                                                     phi[index_a[own]] - phi[index_b[own]], targets[own],
                                                     precision, self.config.iterations)
        self.precision = precision
        self.fitted_covariances = np.zeros((len(self.raters), self.base_size, self.base_size))
        for row, name in enumerate(self.raters):
            own = chosen[name]
            if own.size:
                self.fitted_covariances[row] = weight_covariance(
                    score[index_a[own]] - score[index_b[own]], phi[index_a[own]] - phi[index_b[own]],
                    weights[row], precision)
        return weights

    # ---------------------------------------------------------- scoring
    def base_rewards(self, melodies: Sequence[Melody | np.ndarray], batch_size: int = 512,
                     trunk: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The population's score ``[N]`` and the base rewards ``phi`` ``[N, D]`` of melodies
        (``trunk`` False: without the trunk's outputs, as the trunk is trained on)."""
        rows = [as_melody(m, f"melody {i}") for i, m in enumerate(melodies)]
        population = self.population.score_batch(rows)  # checks the shapes it was trained on
        parts = []
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                parts.append(self.population.inputs(rows[start:start + batch_size]).numpy().astype(np.float64))
        inputs = np.concatenate(parts) if parts else np.zeros((0, int(self.population.heads.features)))
        columns = [population[:, None]] if self.config.population_feature else []
        columns.append(inputs)
        if self.config.quadratic:
            columns.append(inputs ** 2 - 1.0)
        if self.config.trunk_hidden and trunk:
            if self.trunk is None:
                raise RewardModelError(f"{self.name} has no trunk weights (trunk_hidden {self.config.trunk_hidden})")
            columns.append(trunk_outputs(inputs, *self.trunk))
        return population, np.concatenate(columns, axis=1)

    def score_batch(self, melodies: Sequence[Melody | np.ndarray], rater: str | None = None,
                    pessimism: float | None = None) -> np.ndarray:
        """The reward of many melodies for ``rater`` (None: the population), ``[N]``, less
        ``pessimism`` (default: the config's) times the standard deviation of its personal part
        (from the weights' posterior covariance)."""
        if rater is None:
            return self.population.score_batch(melodies)
        index = self.rater_index(rater)
        population, phi = self.base_rewards(melodies)
        return personal_scores(population, phi, self.weights[index], self.covariances[index],
                               self.config.pessimism if pessimism is None else pessimism)

    def member_scores(self, melodies: Sequence[Melody | np.ndarray], rater: str | None = None,
                      samples: int = WEIGHT_SAMPLES) -> np.ndarray:
        """The population members' scores ``[K, N]`` (what a pessimistic reward reads); for
        ``rater``, joint samples of that rater's reward ``[K * samples, N]`` (each member with
        draws of the rater's weights: :func:`~rlcomposer.preferences.personal_uncertainty.rater_member_scores`)."""
        if rater is None:
            return self.population.member_scores(melodies)
        return rater_member_scores(self, melodies, rater, samples)

    def __call__(self, melody: Melody) -> float:
        """The population's reward of one melody."""
        return float(self.population.score_batch([melody])[0])


def personal_scores(population: np.ndarray, phi: np.ndarray, weights: np.ndarray, covariance: np.ndarray,
                    pessimism: float = 0.0) -> np.ndarray:
    """``population + phi . weights - pessimism * sqrt(phi' C phi)``, ``[N]``."""
    scores = population + phi @ weights
    if pessimism:
        scores = scores - pessimism * np.sqrt(np.maximum(np.einsum("nd,de,ne->n", phi, covariance, phi), 0.0))
    return scores


# ---------------------------------------------------------------- training
def train_personal_reward_model(comparisons: Sequence[PairLabel], star_ratings: Sequence[StarLabel],
                                config: RewardModelConfig = RewardModelConfig(),  # noqa: B008 (frozen)
                                personal: PersonalRewardConfig = PersonalRewardConfig(),  # noqa: B008
                                prior: MelodyPrior | str | Path | None = None,
                                raters: Sequence[str] = (),
                                log: Callable[[str], None] | None = print) -> PersonalRewardModel:
    """Train the population ensemble on everyone's answers, then each rater's weights on that
    rater's comparisons (see the module docstring); with ``personal.folds`` >= 2, the per-rater
    held-out table goes in ``metrics["per_rater"]``. ``raters``: raters to know beside those who
    answered (with no answers: the population). Fewer than two raters with answers is an error."""
    say = log or (lambda _message: None)
    usable = [c for c in comparisons if c.choice in CHOICE_SCORE]
    answered = sorted({c.rater for c in usable})
    if len(answered) < 2:
        who = f" ({answered[0]})" if answered else ""
        raise RewardModelError(
            f"a personal reward model needs the answers of at least two raters; these ratings have "
            f"{len(answered)}{who}: train one model with `rlcomposer reward train` (add --rater to pick one)")
    names = sorted(set(answered) | {str(r) for r in raters} | {s.rater for s in star_ratings})
    population = train_reward_model(usable, star_ratings, config, prior, log=log)
    model = PersonalRewardModel(population, names, [sum(c.rater == r for c in usable) for r in names],
                                np.zeros((len(names), 0)), personal)
    rows, index_a, index_b, _ = index_melodies(usable)
    score, phi = model.base_rewards(rows, trunk=False)
    targets = np.array([CHOICE_SCORE[c.choice] for c in usable], dtype=np.float64)
    by_rater = {r: np.array([i for i, c in enumerate(usable) if c.rater == r], dtype=np.int64) for r in names}
    if personal.trunk_hidden:
        model.trunk = _train_trunk(model, score, phi, index_a, index_b, usable, personal)
        score, phi = model.base_rewards(rows)
    weights = model.fit_weights(usable, personal.penalty, (score, phi, rows, index_a, index_b))
    model.weights, model.covariances = weights, model.fitted_covariances
    metrics: dict[str, Any] = {"population": population.metrics, "penalty": personal.penalty,
                               "base_rewards": int(phi.shape[1]),
                               "raters": [{"rater": r, "comparisons": model.answers[i],
                                           "weight_norm": float(np.linalg.norm(weights[i]))}
                                          for i, r in enumerate(names)]}
    if personal.folds >= 2 and population.held_out_predictions:
        metrics["per_rater"] = _per_rater_report(usable, star_ratings, names, by_rater, score, phi, index_a,
                                                 index_b, targets, population, config, personal, prior, say,
                                                 model.precision)
    model.metrics = metrics
    return model


def trunk_outputs(inputs: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The shared trunk's outputs ``[N, H]``: GELU of ``inputs @ weight + bias``."""
    with torch.no_grad():
        hidden = torch.from_numpy(np.asarray(inputs, dtype=np.float64) @ weight + bias)
        return torch.nn.functional.gelu(hidden).numpy()


def _train_trunk(model: PersonalRewardModel, score: np.ndarray, phi: np.ndarray, index_a: np.ndarray,
                 index_b: np.ndarray, usable: Sequence[PairLabel],
                 personal: PersonalRewardConfig) -> tuple[np.ndarray, np.ndarray]:
    """The trunk, trained with every rater's weights at once on everyone's comparisons: summed
    Bradley-Terry cross-entropy of each comparison under its rater's reward, plus ``penalty / 2``
    times the squares of the raters' weights and ``trunk_penalty / 2`` times the trunk's."""
    features = int(model.population.heads.features)
    offset = int(personal.population_feature)
    inputs = torch.from_numpy(phi[:, offset:offset + features].copy())
    linear = torch.from_numpy(phi)
    rater_of = {name: i for i, name in enumerate(model.raters)}
    raters = torch.tensor([rater_of[c.rater] for c in usable], dtype=torch.long)
    targets = torch.tensor([CHOICE_SCORE[c.choice] for c in usable], dtype=torch.float64)
    base = torch.from_numpy(score[index_a] - score[index_b])
    a, b = torch.from_numpy(index_a), torch.from_numpy(index_b)
    generator = torch.Generator().manual_seed(personal.seed)
    hidden = personal.trunk_hidden
    weight = (torch.randn(features, hidden, generator=generator, dtype=torch.float64) / math.sqrt(features))
    bias = torch.zeros(hidden, dtype=torch.float64)
    rater_weights = torch.zeros(len(model.raters), phi.shape[1] + hidden, dtype=torch.float64)
    parameters = [weight.requires_grad_(), bias.requires_grad_(), rater_weights.requires_grad_()]
    optimiser = torch.optim.Adam(parameters, lr=1e-2)
    with torch.enable_grad():
        for _ in range(personal.trunk_steps):
            trunk = torch.nn.functional.gelu(inputs @ weight + bias)
            everything = torch.cat([linear, trunk], dim=1)
            logits = base + ((everything[a] - everything[b]) * rater_weights[raters]).sum(1)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
                    + 0.5 * personal.penalty * rater_weights.square().sum()
                    + 0.5 * personal.trunk_penalty * weight.square().sum())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return weight.detach().numpy().copy(), bias.detach().numpy().copy()


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _accuracy(probabilities: np.ndarray, targets: np.ndarray) -> float | None:
    if probabilities.size == 0:
        return None
    return evaluate_pairs(probabilities, targets, intervals=False)["accuracy"]


def _per_rater_report(usable: Sequence[PairLabel], stars: Sequence[StarLabel], names: Sequence[str],
                      by_rater: dict[str, np.ndarray], score: np.ndarray, phi: np.ndarray, index_a: np.ndarray,
                      index_b: np.ndarray, targets: np.ndarray, population: RewardEnsemble,
                      config: RewardModelConfig, personal: PersonalRewardConfig, prior,
                      say: Callable[[str], None], model_precision: float | np.ndarray) -> list[dict[str, Any]]:
    """Per rater: held-out accuracy against the rater's own answers of the population, rater-alone
    and personal models (module docstring)."""
    predictions = population.held_out_predictions
    out_of_fold = np.full(len(usable), np.nan)
    out_of_fold[np.asarray(predictions["comparisons"], dtype=np.int64)] = _logit(
        np.asarray(predictions["probabilities"], dtype=np.float64))
    rng = np.random.default_rng(personal.seed)
    precision = model_precision
    rows = []
    for name in names:
        chosen = by_rater[name]
        chosen = chosen[np.isfinite(out_of_fold[chosen])]
        row: dict[str, Any] = {"rater": name, "comparisons": int(len(by_rater[name])),
                               "decided": int(np.sum(targets[chosen] != 0.5)),
                               "population": None, "alone": None, "personal": None}
        if chosen.size:
            base = out_of_fold[chosen]
            row["population"] = _accuracy(sigmoid(base), targets[chosen])
            # the population feature of the held-out fold is its out-of-fold score too
            base_phi_a, base_phi_b = phi[index_a[chosen]].copy(), phi[index_b[chosen]].copy()
            delta_phi = base_phi_a - base_phi_b
            if personal.population_feature:
                delta_phi[:, 0] = base
            predicted = np.zeros(chosen.size)
            folds = np.array_split(rng.permutation(chosen.size), min(personal.folds, chosen.size))
            for fold in folds:
                train = np.setdiff1d(np.arange(chosen.size), fold)
                w = fit_rater_weights(base[train], delta_phi[train], targets[chosen][train], precision,
                                      personal.iterations)
                predicted[fold] = sigmoid(base[fold] + delta_phi[fold] @ w)
            row["personal"] = _accuracy(predicted, targets[chosen])
        own = [usable[i] for i in by_rater[name]]
        if len(own) >= personal.min_alone_comparisons:
            alone_config = replace(config, min_comparisons=personal.min_alone_comparisons,
                                   cv_folds=min(max(config.cv_folds, 2), len(own)))
            try:
                alone = train_reward_model(own, [s for s in stars if s.rater == name], alone_config, prior, log=None)
                row["alone"] = alone.metrics["held_out"]["accuracy"]
            except RewardModelError as error:
                row["alone_note"] = str(error)
        else:
            row["alone_note"] = f"fewer than {personal.min_alone_comparisons} comparisons"
        rows.append(row)
        say(f"  {name}: {row['comparisons']} comparisons; held-out accuracy population {_fmt(row['population'])}, "
            f"alone {_fmt(row['alone'])}, personal {_fmt(row['personal'])}")
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


# ------------------------------------------------------------------ on disk
def save_personal_reward_model(model: PersonalRewardModel, out_dir: str | Path) -> Path:
    """Write the personal model's directory: the population in ``population/``, the raters'
    weights, names and answer counts, its config and metrics."""
    out_dir = Path(out_dir)
    save_reward_model(model.population, out_dir / POPULATION_DIR)
    tensors = {"rater_weights": torch.from_numpy(np.ascontiguousarray(model.weights)).float(),
               "rater_covariances": torch.from_numpy(np.ascontiguousarray(model.covariances)).float()}
    if model.trunk is not None:
        tensors.update(trunk_weight=torch.from_numpy(np.ascontiguousarray(model.trunk[0])).float(),
                       trunk_bias=torch.from_numpy(np.ascontiguousarray(model.trunk[1])).float())
    return save_model_dir(out_dir, PERSONAL_KIND, model.population.prior_config, tensors,
                          model.config, model.metrics,
                          extra_config={"raters": list(model.raters), "answers": list(model.answers),
                                        "prior_hash": model.population.prior_hash})


def is_personal_reward_model(directory: str | Path) -> bool:
    """Does ``directory`` hold a personal reward model (by the kind in its config)?"""
    import json

    path = Path(directory) / CONFIG_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("kind") == PERSONAL_KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_personal_reward_model(directory: str | Path,
                               expected_prior: MelodyPrior | str | Path | None = None) -> PersonalRewardModel:
    """Load a personal reward-model directory (every problem is one line)."""
    files = read_model_dir(directory, expected_kinds=(PERSONAL_KIND,))
    where = f"{directory}/{CONFIG_FILE}"
    population = load_reward_model(Path(directory) / POPULATION_DIR, expected_prior)
    try:
        config = config_from_dict(PersonalRewardConfig, dict(files.config.get("training", {})), where)
    except (ConfigError, RewardModelError) as error:
        raise CheckpointError(str(error)) from None
    raters, answers = files.config.get("raters"), files.config.get("answers")
    weights = files.state_dict.get("rater_weights")
    if (not isinstance(raters, list) or not isinstance(answers, list) or len(raters) != len(answers)
            or not all(isinstance(r, str) for r in raters) or not all(isinstance(a, int) for a in answers)):
        raise CheckpointError(f"{where}: unreadable raters and answer counts")
    features = int(population.heads.features)
    expected = (len(raters), features * (2 if config.quadratic else 1) + int(config.population_feature)
                + config.trunk_hidden)
    if weights is None or tuple(weights.shape) != expected:
        raise CheckpointError(f"{directory}: rater weights of shape "
                              f"{None if weights is None else tuple(weights.shape)}, expected {expected}")
    model = PersonalRewardModel(population, raters, answers, weights.double().numpy(), config, files.metrics)
    covariances = files.state_dict.get("rater_covariances")
    if covariances is None or tuple(covariances.shape) != (expected[0], expected[1], expected[1]):
        raise CheckpointError(f"{directory}: rater covariances of shape "
                              f"{None if covariances is None else tuple(covariances.shape)}, "
                              f"expected {(expected[0], expected[1], expected[1])}")
    model.covariances = covariances.double().numpy()
    if config.trunk_hidden:
        trunk_weight, trunk_bias = files.state_dict.get("trunk_weight"), files.state_dict.get("trunk_bias")
        if (trunk_weight is None or trunk_bias is None or tuple(trunk_weight.shape) != (features, config.trunk_hidden)
                or tuple(trunk_bias.shape) != (config.trunk_hidden,)):
            raise CheckpointError(f"{directory}: no trunk weights of shape ({features}, {config.trunk_hidden})")
        model.trunk = (trunk_weight.double().numpy(), trunk_bias.double().numpy())
    model.name = f"personal reward model '{directory}'"
    return model


__all__ = ["PERSONAL_KIND", "PersonalRewardModel", "RaterReward", "fit_rater_weights",
           "is_personal_reward_model", "load_personal_reward_model", "rater_key", "save_personal_reward_model",
           "train_personal_reward_model"]
