"""Side-by-side evaluation of melody models: music metrics, style overlap with the corpus,
diversity, and likelihood under the prior.

Every model's row shows musicality beside win-rate and KL: the Sequence Tutor
metrics, the style overlap with the held-out corpus (:mod:`rlcomposer.music.style`),
the share of distinct melodies, distinct 4-note patterns relative to the
baseline model's and the corpus's, and the longest run of one repeated pitch;
:func:`format_evaluation` prints collapse warnings under the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlcomposer.music.melody import Melody
from rlcomposer.music.metrics import MusicMetrics, compute_music_metrics, format_metrics_table
from rlcomposer.music.style import (
    FEATURE_LABELS,
    StyleReference,
    StyleReport,
    collapse_warnings,
    load_style_reference,
    style_report,
)
from rlcomposer.prior.model import SHIPPED_PRIOR_DIR, MelodyCondition, MelodyPrior, load_prior
from rlcomposer.prior.registry import MelodyModel


@dataclass
class ModelEvaluation:
    """One model's column of the evaluation table."""

    name: str
    metrics: MusicMetrics
    prior_log_likelihood_per_step: float
    """Mean log p_prior(token | history) per step under the reference prior (nats)."""
    kl_to_prior_per_melody: float | None = None
    """Mean Σ_t KL(model(·|s_t) || prior(·|s_t)) over sampled melodies (nats); None if unknown."""
    mean_reward: float | None = None
    """Mean of the reward function over the sampled melodies, if one was given."""
    listener_score: float | None = None
    """Mean score of the listener, if one was given."""
    win_rate: float | None = None
    """Share of pairs (this model's i-th melody vs the reference model's) the listener prefers,
    noiselessly, ties ½; None for the reference itself or without a listener."""
    style: StyleReport | None = None
    """Style overlap with the corpus and diversity; distinct patterns relative to the baseline's."""
    is_baseline: bool = False
    """Is this the model the others are compared with (win-rate, distinct patterns)?"""
    collapse_warnings: list[str] = field(default_factory=list)
    """Plain-language warnings of :func:`~rlcomposer.music.style.collapse_warnings`."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metrics": self.metrics.as_dict(),
            "prior_log_likelihood_per_step": self.prior_log_likelihood_per_step,
            "kl_to_prior_per_melody": self.kl_to_prior_per_melody,
            "mean_reward": self.mean_reward,
            "listener_score": self.listener_score,
            "win_rate": self.win_rate,
            "style": self.style.as_dict() if self.style is not None else None,
            "is_baseline": self.is_baseline,
            "collapse_warnings": list(self.collapse_warnings),
        }


@torch.inference_mode()
def prior_log_likelihood_per_step(
    prior: MelodyPrior, melodies: Sequence[Melody], batch_size: int = 512
) -> float:
    """Mean per-step log-likelihood of equal-length melodies under ``prior``."""
    total, steps = 0.0, 0
    for first in range(0, len(melodies), batch_size):
        batch = torch.as_tensor(np.stack([m.tokens for m in melodies[first:first + batch_size]]),
                                dtype=torch.long)
        condition = MelodyCondition.of(melodies[first])
        total += float(prior.log_likelihood(batch, condition).sum())
        steps += batch.numel()
    return total / steps


def kl_to_prior(model: MelodyModel, prior: MelodyPrior, melodies: Sequence[Melody]) -> float | None:
    """Mean KL(model || prior) per melody: exact along the melodies for a network model,
    the closed form for best-of-N of the prior, None for models without a distribution."""
    from rlcomposer.prior.registry import PriorModel
    from rlcomposer.rl.best_of_n import BestOfNModel
    from rlcomposer.rl.kl import kl_to_prior_per_melody

    if isinstance(model, PriorModel):
        tokens = torch.as_tensor(np.stack([m.tokens for m in melodies]), dtype=torch.long)
        condition = MelodyCondition.of(melodies[0])
        return float(kl_to_prior_per_melody(model.prior, prior, tokens, condition).mean())
    if isinstance(model, BestOfNModel) and isinstance(model.base, PriorModel):
        base_kl = kl_to_prior(model.base, prior, melodies)
        return model.kl_to_base_per_melody + (base_kl or 0.0)
    return None


def evaluate_models(
    models: Sequence[MelodyModel],
    num_melodies: int,
    num_steps: int,
    rng: np.random.Generator,
    prior: MelodyPrior | None = None,
    reward_fn: Callable[[Melody], float] | None = None,
    listener_fn: Callable[[Melody], float] | None = None,
    reference_index: int = -1,
    style_reference: StyleReference | None = None,
    condition: MelodyCondition | None = None,
) -> list[ModelEvaluation]:
    """Sample ``num_melodies`` from each model and measure them all the same way.

    ``prior`` is the reference for the log-likelihood and KL rows (default: the
    shipped prior); ``reward_fn`` adds the mean reward; ``listener_fn`` adds the
    listener's mean score and each model's win-rate against the model at
    ``reference_index`` (the baseline), pair by pair, by the listener's
    noiseless preference (ties count ½). ``condition`` asks every model for
    melodies of one metre and mode (default 4/4 major).

    Every model also gets a :class:`~rlcomposer.music.style.StyleReport`
    against ``style_reference`` (default: the shipped statistics of the corpus's
    test split), its distinct 4-note patterns relative to the baseline's, and
    the collapse warnings (the non-baseline models compared with the baseline).
    """
    prior = prior if prior is not None else load_prior(SHIPPED_PRIOR_DIR)
    style_reference = style_reference if style_reference is not None else load_style_reference(
        family=condition.metre.family if condition is not None else "duple")
    names = _column_names([model.name for model in models])
    samples: dict[str, list[Melody]] = {}
    kl: dict[str, float | None] = {}
    for name, model in zip(names, models, strict=True):
        # a condition only when asked: models written before metres keep working
        samples[name] = model.sample(num_melodies, num_steps, rng,
                                     **({"condition": condition} if condition is not None else {}))
        kl[name] = kl_to_prior(model, prior, samples[name])
    return evaluate_samples(samples, prior, names[reference_index], kl=kl, reward_fn=reward_fn,
                            listener_fn=listener_fn, style_reference=style_reference)


def _column_names(names: Sequence[str]) -> list[str]:
    """Model names made unique for the table: a repeated name gets " (2)", " (3)" …"""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def evaluate_samples(
    samples: Mapping[str, Sequence[Melody]],
    prior: MelodyPrior,
    baseline: str,
    kl: Mapping[str, float | None] | None = None,
    reward_fn: Callable[[Melody], float] | None = None,
    listener_fn: Callable[[Melody], float] | None = None,
    preference_fn: Callable[[Sequence[Melody], Sequence[Melody]], np.ndarray] | None = None,
    style_reference: StyleReference | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[ModelEvaluation]:
    """Measure melodies already sampled, one column per name, all the same way: the one
    evaluator behind :func:`evaluate_models` and an experiment's rounds.

    ``samples`` maps a column's name to its melodies; ``baseline`` names the column the others
    are compared with (win-rate, distinct patterns, collapse). ``kl`` gives each column's KL to
    ``prior`` per melody where it is known. ``reward_fn`` adds the mean reward, ``listener_fn``
    the listener's mean score and the win-rate against the baseline's melodies pair by pair
    (the i-th melody against the baseline's i-th; a column may be shorter than the baseline's),
    by ``preference_fn(first, second)`` (noiseless P(first beats second), ties ½) when given,
    else by comparing the listener's scores (equal scores ½). ``style_reference``: default the
    shipped statistics of the baseline melodies' metre family. ``descriptions`` names a column's
    melodies in the collapse warnings (default "NAME's melodies").
    """
    from rlcomposer.preferences.reward_functions import score_melodies

    if baseline not in samples:
        raise ValueError(f"the baseline {baseline!r} is not one of the columns {list(samples)}")
    kl = kl or {}
    results, listener_scores = [], {}
    for name, melodies in samples.items():
        scores = score_melodies(listener_fn, melodies, "listener") if listener_fn is not None else None
        listener_scores[name] = scores
        results.append(ModelEvaluation(
            name,
            compute_music_metrics(melodies),
            prior_log_likelihood_per_step(prior, melodies),
            kl.get(name),
            float(score_melodies(reward_fn, melodies).mean()) if reward_fn is not None else None,
            float(scores.mean()) if scores is not None else None,
        ))
    if listener_fn is not None or preference_fn is not None:
        reference, base = listener_scores[baseline], samples[baseline]
        for result in results:
            if result.name == baseline:
                continue
            melodies = samples[result.name]
            if preference_fn is not None:
                result.win_rate = float(np.mean(preference_fn(melodies, base[:len(melodies)])))
            else:
                scores, against = listener_scores[result.name], reference[:len(melodies)]
                result.win_rate = float(np.mean((scores > against) + 0.5 * (scores == against)))
    if style_reference is None:
        style_reference = load_style_reference(family=samples[baseline][0].metre.family)
    names = list(samples)
    _add_style(results, [samples[name] for name in names], names.index(baseline), style_reference,
               descriptions or {})
    return results


def _add_style(results: Sequence[ModelEvaluation], samples: Sequence[Sequence[Melody]],
               baseline_index: int, reference: StyleReference, descriptions: Mapping[str, str]) -> None:
    """Style reports (patterns relative to the baseline's) and collapse warnings, in place."""
    baseline = results[baseline_index]
    baseline.is_baseline = True
    for result, melodies in zip(results, samples, strict=True):  # the baseline's own ratio is 1
        result.style = style_report(melodies, reference, baseline=samples[baseline_index])
    for index, result in enumerate(results):
        assert result.style is not None
        name = descriptions.get(result.name, f"{result.name}'s melodies")
        if index == baseline_index:
            result.collapse_warnings = collapse_warnings(result.style, name=name)
        else:
            result.collapse_warnings = collapse_warnings(
                result.style, baseline.style, name=name,
                baseline_name=descriptions.get(baseline.name, baseline.name))


def _cell(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _style_rows(results: Sequence[ModelEvaluation]) -> dict[str, list[str]]:
    styles = [r.style for r in results]
    if any(s is None for s in styles):
        return {}
    baseline = next((r.name for r in results if r.is_baseline), None)
    rows = {"Style overlap with corpus": [f"{s.style_overlap:.3f}" for s in styles]}
    for name, label in FEATURE_LABELS.items():
        rows[f"  overlap: {label}"] = [f"{s.feature_overlap[name]:.3f}" for s in styles]
    rows["Distinct melodies"] = [f"{100 * s.distinct_melodies:.1f}%" for s in styles]
    rows["Distinct 4-note patterns"] = [str(s.distinct_patterns) for s in styles]
    if baseline is not None:
        rows[f"  patterns relative to {baseline}"] = [
            "-" if r.is_baseline or r.style.pattern_ratio_to_baseline is None
            else f"{r.style.pattern_ratio_to_baseline:.2f}" for r in results]
    rows["  patterns relative to corpus"] = [f"{s.pattern_ratio_to_reference:.2f}" for s in styles]
    rows["Longest one-pitch run (mean / max)"] = [
        f"{s.longest_run_mean:.1f} / {s.longest_run_max}" for s in styles]
    rows["Melodies one pitch repeated"] = [f"{100 * s.monotone_share:.1f}%" for s in styles]
    return rows


def format_warnings(results: Sequence[ModelEvaluation]) -> str:
    """The collapse warnings of every model, one per line (empty when there are none)."""
    lines = [f"  - {w}" for r in results for w in r.collapse_warnings]
    return "Warnings:\n" + "\n".join(lines) + "\n" if lines else ""


def format_evaluation(results: Sequence[ModelEvaluation], with_warnings: bool = True) -> str:
    """The metrics table with rows for reward, KL to the prior, prior log-likelihood, style
    overlap and diversity; the collapse warnings under it (unless ``with_warnings`` is False)."""
    extra = {}
    if any(r.mean_reward is not None for r in results):
        extra["Mean reward"] = [_cell(r.mean_reward) for r in results]
    if any(r.listener_score is not None for r in results):
        extra["Listener score (mean)"] = [_cell(r.listener_score) for r in results]
        reference = next((r.name for r in results if r.is_baseline), results[-1].name)
        extra[f"Listener win-rate vs {reference}"] = [
            "-" if r.win_rate is None else f"{100 * r.win_rate:.1f}%" for r in results]
    extra["KL to prior / melody (nats)"] = [_cell(r.kl_to_prior_per_melody, 2) for r in results]
    extra["Prior log-likelihood / step"] = [_cell(r.prior_log_likelihood_per_step) for r in results]
    extra.update(_style_rows(results))
    table = format_metrics_table({r.name: r.metrics for r in results}, extra_rows=extra)
    warnings = format_warnings(results) if with_warnings else ""
    return table + ("\n" + warnings if warnings else "")
