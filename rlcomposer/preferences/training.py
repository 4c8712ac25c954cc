"""Training a reward ensemble on comparisons and star ratings (:func:`train_reward_model`):
bootstrap members, out-of-bag early stopping, temperature scaling and cross-validation of the
whole procedure (see :mod:`rlcomposer.preferences.reward_model` for the method)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlcomposer.checkpoints import check_finite_loss
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.calibration import evaluate_pairs, fit_temperature, log_loss, sigmoid
from rlcomposer.preferences.choices import CHOICE_SCORE
from rlcomposer.preferences.ensemble import (
    MelodyEncoder,
    MemberHeads,
    RewardEnsemble,
    melody_shape,
    prior_fingerprint,
)
from rlcomposer.preferences.labels import PairLabel, StarLabel, as_melody
from rlcomposer.preferences.reward_model_config import RewardModelConfig, RewardModelError
from rlcomposer.prior.model import MelodyCondition, MelodyPrior, load_prior


def train_reward_model(comparisons: Sequence[PairLabel], star_ratings: Sequence[StarLabel],
                       config: RewardModelConfig = RewardModelConfig(),  # noqa: B008 (frozen)
                       prior: MelodyPrior | str | Path | None = None,
                       log: Callable[[str], None] | None = print) -> RewardEnsemble:
    """Train a reward ensemble on comparisons and star ratings (see the module docstring).

    Too few usable comparisons raise :class:`RewardModelError` saying how many
    are needed. The returned ensemble's ``metrics`` hold the held-out accuracy
    (and its 95% interval), log-loss, Brier score and ECE, the epoch and
    temperature chosen, and the counts and raters of the data it saw.
    """
    say = log or (lambda _message: None)
    started = time.monotonic()
    usable = [c for c in comparisons if c.choice in CHOICE_SCORE]
    unknown = sorted({c.choice for c in comparisons if c.choice not in CHOICE_SCORE and c.choice != "skip"})
    if unknown:
        raise RewardModelError(f"comparison choice {unknown[0]!r} must be a, b, tie or skip")
    skipped = len(comparisons) - len(usable)
    if len(usable) < config.min_comparisons:
        raise RewardModelError(
            f"too few ratings to train a reward model: {len(usable)} usable comparisons (not skipped)"
            f"{f' and {skipped} skipped' if skipped else ''}; at least {config.min_comparisons} are needed"
            " (collect more with the app or `rlcomposer ratings simulate`)")
    for s in star_ratings:
        if not 1 <= int(s.stars) <= 5:
            raise RewardModelError(f"star rating {s.stars} is outside 1-5")
    prior_model = _resolve_prior(prior, config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(usable, list(star_ratings), skipped, config, prior_model, say, started)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Data:
    """Training data indexed by unique melody (its tokens, metre, key and pick-up)."""

    rows: list[Melody]
    pair_a: np.ndarray
    pair_b: np.ndarray
    targets: np.ndarray
    star_index: np.ndarray
    star_z: np.ndarray


def index_melodies(usable: Sequence[PairLabel], stars: Sequence[StarLabel] = ()
                   ) -> tuple[list[Melody], np.ndarray, np.ndarray, np.ndarray]:
    """Each unique melody (its tokens, metre, key and pick-up) once, and the row of each
    comparison's A, of its B and of each star rating's melody."""
    index: dict[tuple, int] = {}
    rows: list[Melody] = []

    def melody_index(melody: Melody) -> int:
        melody = as_melody(melody)
        key = (np.asarray(melody.tokens, dtype=np.int64).tobytes(), melody.metre, melody.key, melody.pickup_steps)
        if key not in index:
            index[key] = len(rows)
            rows.append(melody)
        return index[key]

    pair_a = np.array([melody_index(c.melody_a) for c in usable], dtype=np.int64)
    pair_b = np.array([melody_index(c.melody_b) for c in usable], dtype=np.int64)
    star_index = np.array([melody_index(s.melody) for s in stars], dtype=np.int64)
    return rows, pair_a, pair_b, star_index


def _index_data(usable: Sequence[PairLabel], stars: Sequence[StarLabel]) -> _Data:
    rows, pair_a, pair_b, star_index = index_melodies(usable, stars)
    targets = np.array([CHOICE_SCORE[c.choice] for c in usable], dtype=np.float64)
    return _Data(rows, pair_a, pair_b, targets, star_index, _zscore_per_rater(stars))


def reference_melodies(prior: MelodyPrior, rows: Sequence[Melody], count: int,
                       generator: torch.Generator) -> list[Melody]:
    """``count`` prior melodies in the shapes of ``rows`` (metre, mode, length, pick-up), in proportion
    to how often each shape occurs (the most common first; every shape gets at least one). A shape
    with a pick-up is sampled whole bars long and cut after the bar's first ``metric_offset`` steps."""
    shapes: dict[tuple, int] = {}
    for melody in rows:
        shape = (melody.metre, melody.key.mode, melody.num_steps, melody.pickup_steps)
        shapes[shape] = shapes.get(shape, 0) + 1
    order = sorted(shapes, key=lambda shape: -shapes[shape])
    total = sum(shapes.values())
    counts = [max(1, int(round(count * shapes[shape] / total))) for shape in order]
    counts[0] += count - sum(counts)  # the most common shape takes the rounding
    reference: list[Melody] = []
    for (metre, mode, steps, pickup), number in zip(order, counts, strict=True):
        if number <= 0:
            continue
        cut = (metre.steps_per_bar - pickup) % metre.steps_per_bar if pickup else 0
        tokens = prior.sample(number, steps + cut, generator, condition=MelodyCondition(metre, mode, steps + cut))
        reference += [Melody(row[cut:], metre=metre, key=Key("C", mode), pickup_steps=pickup) for row in tokens]
    return reference


def _template(prior: MelodyPrior, config: RewardModelConfig, rows: Sequence[Melody],
              rng: np.random.Generator) -> RewardEnsemble:
    """An untrained ensemble: the prior's encoder weights and the input standardisation (on prior
    melodies of the training melodies' shapes); it records those shapes."""
    ensemble = RewardEnsemble(prior.config, config, prior_fingerprint(prior),
                              shapes=[melody_shape(m) for m in rows])
    base = MelodyEncoder.from_prior(prior, config.summary) if config.summary else None
    for encoder in ([ensemble.encoder] if ensemble.encoder is not None else list(ensemble.encoders or [])):
        encoder.load_state_dict(base.state_dict())  # type: ignore[union-attr]
    if config.needs_reference:
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        reference = reference_melodies(prior, rows, config.reference_melodies, generator)
        if base is not None and config.summary_components:  # principal components on the reference
            with torch.no_grad():
                summary = torch.cat([ensemble.encode(base, reference[s:s + 512])
                                     for s in range(0, len(reference), 512)])
            center = summary.mean(0)
            _, _, right = torch.linalg.svd(summary - center, full_matrices=False)
            ensemble.summary_center.copy_(center)
            ensemble.summary_projection.copy_(right[:config.summary_components].t())
        with torch.no_grad():
            raw = torch.cat([ensemble.raw_inputs(reference[s:s + 512], base)
                             for s in range(0, len(reference), 512)])
        mean, std = raw.mean(0), raw.std(0).clamp(min=1e-3)
        if config.input_norm == "layer":  # the heads normalise the GRU part themselves
            mean[:ensemble.encoder_features] = 0.0
            std[:ensemble.encoder_features] = 1.0
        ensemble.input_mean.copy_(mean)
        ensemble.input_std.copy_(std)
    return ensemble


def _train(usable: list[PairLabel], stars: list[StarLabel], skipped: int, config: RewardModelConfig,
           prior: MelodyPrior, say: Callable[[str], None], started: float) -> RewardEnsemble:
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    data = _index_data(usable, stars)
    n = len(usable)
    order = rng.permutation(n)  # first: the same seed splits the same way whatever the settings
    template = _template(prior, config, data.rows, rng)
    cached: torch.Tensor | None = None
    if template.encoders is None:  # a frozen (or no) encoder: the heads' inputs once
        with torch.no_grad():
            cached = torch.cat([template.inputs(data.rows[s:s + 512]) for s in range(0, len(data.rows), 512)])
    cross_validate = config.cv_folds >= 2
    if cross_validate:
        folds = [np.sort(f) for f in np.array_split(order, min(config.cv_folds, n))]
        final_train = np.arange(n)
        method = f"{len(folds)}-fold cross-validation"
    else:
        n_val = max(2, int(round(config.validation_fraction * n)))
        folds = [np.sort(order[:n_val])]
        final_train = np.sort(order[n_val:])
        method = "hold-out split"
    say(f"reward model: {n} comparisons, {skipped} skipped, {len(stars)} star ratings, "
        f"{len(data.rows)} melodies ({template.trained_on()}), K={config.ensemble_size}; held-out metrics by {method}")

    held = np.concatenate(folds)
    member_diff = np.zeros((config.ensemble_size, n))  # calibrated, out of fold
    raw_diff = np.zeros(n)  # the ensemble's before temperature scaling
    fold_rows = []
    if cross_validate:
        for f, fold in enumerate(folds):
            train = np.setdiff1d(np.arange(n), fold)
            fitted, info, scores = _fit(template, data, cached, train, config, rng)
            member_diff[:, fold] = scores[:, data.pair_a[fold]] - scores[:, data.pair_b[fold]]
            raw_diff[fold] = member_diff[:, fold].mean(0) * info["temperature"]
            result = evaluate_pairs(sigmoid(member_diff[:, fold].mean(0)), data.targets[fold],
                                    config.calibration_bins, intervals=False)
            fold_rows.append({"fold": f, "pairs": result["pairs"], "accuracy": result["accuracy"],
                              "log_loss": result["log_loss"], "brier": result["brier"], "ece": result["ece"],
                              "epoch": info["epoch"], "temperature": info["temperature"]})
            say(f"  fold {f + 1}/{len(folds)}: accuracy {_fmt(result['accuracy'])}, log-loss "
                f"{_fmt(result['log_loss'])} on {len(fold)} (epoch {info['epoch']}, T {info['temperature']:.2f})")
    ensemble, info, scores = _fit(template, data, cached, final_train, config, rng)
    if not cross_validate:
        fold = folds[0]
        member_diff[:, fold] = scores[:, data.pair_a[fold]] - scores[:, data.pair_b[fold]]
        raw_diff[fold] = member_diff[:, fold].mean(0) * info["temperature"]
    targets = data.targets[held]
    held_out = evaluate_pairs(sigmoid(member_diff[:, held].mean(0)), targets, config.calibration_bins)
    held_out.update(method=method, folds=len(folds) if cross_validate else 0)
    uncalibrated = evaluate_pairs(sigmoid(raw_diff[held]), targets, config.calibration_bins, intervals=False)
    train_diff = scores[:, data.pair_a[final_train]] - scores[:, data.pair_b[final_train]]
    in_sample = evaluate_pairs(sigmoid(train_diff.mean(0)), data.targets[final_train], config.calibration_bins,
                               intervals=False)
    in_sample.pop("reliability", None)
    member_probabilities = sigmoid(member_diff[:, held])
    member_accuracy = [evaluate_pairs(member_probabilities[k], targets, intervals=False)["accuracy"]
                       for k in range(config.ensemble_size)]
    raters = sorted({c.rater for c in usable} | {s.rater for s in stars})
    metrics = {
        "held_out": held_out,
        "held_out_uncalibrated": {k: uncalibrated[k] for k in ("accuracy", "log_loss", "brier", "ece")},
        "train": in_sample,
        "folds": fold_rows,
        "selection": {**info, "fold_epochs": [r["epoch"] for r in fold_rows],
                      "fold_temperatures": [r["temperature"] for r in fold_rows]},
        "member_held_out_accuracy": member_accuracy,
        "held_out_preference_variance": float(member_probabilities.var(0).mean()),
        "data": {
            "comparisons": n + skipped, "usable_comparisons": n, "skipped": skipped,
            "ties": int(np.sum(data.targets == 0.5)), "train_comparisons": int(len(final_train)),
            "held_out_comparisons": int(len(held)), "stars": len(stars), "melodies": len(data.rows),
            "raters": raters,
            "shapes": [{"metre": m, "num_steps": n, "pickup_steps": p} for m, n, p in ensemble.shapes or ()],
        },
        "prior_hash": ensemble.prior_hash,
        "seconds": time.monotonic() - started,
    }
    ensemble.metrics = metrics
    ensemble.held_out_predictions = {"comparisons": held, "probabilities": sigmoid(member_diff[:, held].mean(0)),
                                     "uncalibrated": sigmoid(raw_diff[held]), "targets": targets}
    low, high = held_out.get("accuracy_ci95") or (None, None)
    say(f"held-out: accuracy {_fmt(held_out['accuracy'])} (95% CI {_fmt(low)}-{_fmt(high)}), log-loss "
        f"{_fmt(held_out['log_loss'])}, Brier {_fmt(held_out['brier'])}, ECE {_fmt(held_out['ece'])} on "
        f"{held_out['pairs']} comparisons by {method} (train accuracy {_fmt(in_sample['accuracy'])}; "
        f"epoch {info['epoch']}, temperature {info['temperature']:.2f}; {metrics['seconds']:.1f}s)")
    return ensemble


def _fit(template: RewardEnsemble, data: _Data, cached: torch.Tensor | None, subset: np.ndarray,
         config: RewardModelConfig, rng: np.random.Generator
         ) -> tuple[RewardEnsemble, dict[str, Any], np.ndarray]:
    """Train the members on the comparisons ``subset`` (and every star rating).

    Returns the ensemble (centred on its training melodies, temperature set),
    what was chosen (epoch, temperature, out-of-bag log-loss) and every
    melody's member scores ``[K, M]`` (as :meth:`RewardEnsemble.member_scores`).
    """
    k_members, n = config.ensemble_size, len(subset)
    ensemble = copy.deepcopy(template)
    heads = MemberHeads(k_members, template.heads.features, config.head_hidden, config.dropout,
                        layer_norm=config.input_norm == "layer")
    ensemble.heads = heads
    encoders = list(ensemble.encoders) if ensemble.encoders is not None else []
    modules: list[nn.Module] = [heads, *encoders]
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(True)
    groups = [{"params": list(heads.parameters()), "lr": config.learning_rate}]
    if encoders:
        groups.append({"params": [p for e in encoders for p in e.parameters()], "lr": config.encoder_learning_rate})
    optimiser = torch.optim.AdamW(groups, weight_decay=config.weight_decay, foreach=True)

    bags = rng.integers(0, n, size=(k_members, n))  # each member's bootstrap, positions in subset
    oob = np.ones((k_members, n), dtype=bool)
    for k in range(k_members):
        oob[k, bags[k]] = False
    covered = oob.any(axis=0)
    oob_weight = oob[:, covered] / oob[:, covered].sum(axis=0, keepdims=True)
    a_sub, b_sub, y_sub = data.pair_a[subset], data.pair_b[subset], data.targets[subset]
    n_stars = len(data.star_index)
    star_bags = rng.integers(0, n_stars, size=(k_members, n_stars)) if n_stars else np.zeros((k_members, 0), int)
    steps = max(1, math.ceil(n / config.batch_size))
    star_batch = math.ceil(n_stars / steps) if n_stars and config.star_weight > 0 else 0
    star_z = torch.from_numpy(data.star_z).float()

    def all_scores() -> torch.Tensor:
        """Every member's raw score of every melody, ``[K, M]`` (eval mode, no gradient)."""
        for module in modules:
            module.eval()
        with torch.no_grad():
            if cached is not None:
                return heads(cached)
            return torch.cat([ensemble._member_logits(data.rows[s:s + 256])
                              for s in range(0, len(data.rows), 256)], dim=1)

    def oob_logits(scores: torch.Tensor) -> np.ndarray:
        diff = (scores[:, a_sub] - scores[:, b_sub]).numpy()[:, covered]
        return (diff * oob_weight).sum(axis=0)

    stopping = config.early_stopping and covered.sum() >= 2  # (a handful of comparisons may leave none out of bag)
    best_loss, best_epoch, best_state, best_logits = math.inf, 0, None, np.zeros(int(covered.sum()))
    epoch, total = 0, 0.0
    for epoch in range(1, config.epochs + 1):
        for module in modules:
            module.train()
        order = np.argsort(rng.random((k_members, n)), axis=1)
        star_order = np.argsort(rng.random((k_members, n_stars)), axis=1) if star_batch else None
        total = 0.0
        for step in range(steps):
            picked = np.take_along_axis(bags, order[:, step * config.batch_size:(step + 1) * config.batch_size], 1)
            if picked.shape[1] == 0:
                continue
            ia, ib = a_sub[picked], b_sub[picked]  # [K, b] melody indices
            js = (np.take_along_axis(star_bags, star_order[:, step * star_batch:(step + 1) * star_batch], 1)
                  if star_order is not None else np.zeros((k_members, 0), int))
            index = np.concatenate([ia, ib, data.star_index[js]], axis=1)  # [K, L]
            if cached is not None:
                scores = heads(cached[torch.from_numpy(index)])
            else:
                needed, inverse = np.unique(index.ravel(), return_inverse=True)
                rows = [data.rows[i] for i in needed]
                descriptors = ensemble._descriptor_part(rows)
                stacked = torch.stack([ensemble._combine(ensemble.encode(e, rows), descriptors) for e in encoders])
                scores = heads(stacked).gather(1, torch.from_numpy(inverse.reshape(index.shape)))
            width = ia.shape[1]
            target = torch.from_numpy(y_sub[picked]).float()
            loss = F.binary_cross_entropy_with_logits(scores[:, :width] - scores[:, width:2 * width], target,
                                                      reduction="none").mean(1).sum()
            if js.shape[1]:
                predicted = heads.star_scale.view(-1, 1) * scores[:, 2 * width:] + heads.star_offset.view(-1, 1)
                loss = loss + config.star_weight * F.mse_loss(
                    predicted, star_z[torch.from_numpy(js)], reduction="none").mean(1).sum()
            check_finite_loss(loss, "reward-model training", f"step {step + 1} of epoch {epoch}",
                              f"learning_rate={config.learning_rate:g}, encoder_learning_rate="
                              f"{config.encoder_learning_rate:g}, weight_decay={config.weight_decay:g}")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) / k_members
        if stopping or epoch == config.epochs:
            logits = oob_logits(all_scores())
            loss_oob = log_loss(logits, y_sub[covered])
            if not stopping or loss_oob < best_loss - 1e-6:
                best_loss, best_epoch, best_logits = loss_oob, epoch, logits
                best_state = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]
            elif epoch - best_epoch >= config.patience:
                break
    if best_state is not None and stopping:
        for module, saved in zip(modules, best_state, strict=True):
            module.load_state_dict(saved)
    for parameter in ensemble.parameters():
        parameter.requires_grad_(False)
    raw = all_scores()
    ensemble.eval()
    temperature = fit_temperature(best_logits, y_sub[covered]) if config.calibrate and covered.sum() >= 5 else 1.0
    trained_on = np.unique(np.concatenate([a_sub, b_sub, data.star_index]))
    ensemble.offset.copy_(raw[:, torch.from_numpy(trained_on)].mean(1))
    ensemble.temperature.fill_(temperature)
    scores = ((raw - ensemble.offset.view(-1, 1)) / temperature).numpy().astype(np.float64)
    calibrated = log_loss(best_logits / temperature, y_sub[covered])
    info = {"epoch": int(best_epoch), "epochs_run": int(epoch), "temperature": float(temperature),
            "oob_pairs": int(covered.sum()), "oob_log_loss": best_loss if math.isfinite(best_loss) else None,
            "oob_log_loss_calibrated": calibrated if math.isfinite(calibrated) else None,
            "final_training_loss": total / steps}
    return ensemble, info, scores


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _zscore_per_rater(stars: Sequence[StarLabel]) -> np.ndarray:
    """Stars z-scored within each rater (a rater with one value everywhere gets 0)."""
    values = np.array([float(s.stars) for s in stars], dtype=np.float64)
    result = np.zeros_like(values)
    by_rater: dict[str, list[int]] = {}
    for i, s in enumerate(stars):
        by_rater.setdefault(s.rater, []).append(i)
    for indices in by_rater.values():
        chosen = values[indices]
        std = chosen.std()
        result[indices] = (chosen - chosen.mean()) / std if std > 0 else 0.0
    return result



def _resolve_prior(prior: MelodyPrior | str | Path | None, config: RewardModelConfig) -> MelodyPrior:
    if isinstance(prior, MelodyPrior):
        return prior
    spec = config.prior if prior is None else str(prior)
    return load_prior(spec)



__all__ = ["train_reward_model"]
