"""Style overlap with the folk corpus, and the signs of a collapsed set of melodies.

Win-rates against a listener can rise while the melodies collapse (one pitch
repeated, every melody alike). This module measures a *set* of melodies against
the held-out corpus so that every evaluation shows it.

**Style overlap** (the "overlapping area" of Yang & Lerch 2020, *On the
evaluation of generative models in music*, in its histogram form): for each
feature, the histogram of the feature over the set and over the reference, with
the same fixed integer bins (values outside are clipped into the end bins), each
normalised to a probability distribution ``p``, ``q``; their overlap is
``Σ min(p, q)`` ∈ [0, 1] (1: the same distribution; 0: disjoint). The features
(:data:`FEATURES`), pooled over all melodies of the set:

* ``interval``: semitones between consecutive notes (rests skipped), -12..+12;
* ``duration``: note lengths in sixteenths, 1..16;
* ``scale_degree``: pitch class relative to the tonic (``tonic``, default each
  melody's own key's: the corpus is transposed to C), 0..11;
* ``range``: highest minus lowest pitch of each melody, 0..24 semitones;
* ``notes_per_bar``: note onsets in each whole bar of the melody's metre (after
  its pick-up), 0..16.

The **style overlap** is the mean of the five overlaps.

Diversity and collapse:

* ``distinct_melodies``: the share of distinct melodies (by their sounding notes,
  so ``REST REST`` and ``REST HOLD`` count as one);
* ``distinct_patterns``: the number of distinct 4-note patterns in the set, a
  pattern being the 3 intervals and 4 durations (sixteenths, clipped as above)
  of 4 consecutive notes of a melody. It grows with the number of melodies, so
  it is compared *at the same number of melodies*: with a ``baseline`` set (e.g.
  the prior's melodies; the larger set is subsampled to the smaller) and with the
  reference corpus (its count curve, interpolated in log-log; melodies of another
  length count as ``n · num_steps / 64`` melodies of 4 bars);
* ``longest_repeated_pitch_run``: per melody, the longest run of consecutive
  notes on the same pitch (rests between them do not break it); mean and max;
* ``monotone_share``: the share of "one pitch repeated" melodies: a run of at
  least :data:`MONOTONE_RUN` notes on one pitch, or one pitch carrying at least
  :data:`MONOTONE_PITCH_SHARE` of the notes (of a melody with at least
  :data:`MONOTONE_MIN_NOTES` notes).

:func:`collapse_warnings` turns a :class:`StyleReport` into plain-language
warnings; its thresholds (:data:`COLLAPSE_THRESHOLDS`) are documented there,
with the figures they were chosen from.

**The reference** ships with the package (``rlcomposer/data/style_reference.json``,
a few KB: the histograms of the held-out *test* split of the corpus, as 4-bar
bar-aligned excerpts sampled like the ``corpus`` model of ``rlcomposer evaluate``
does, and the corpus's distinct-pattern count per number of melodies), one per
metre family (``duple``: 4/4 tunes, ``triple``: 3/4, ``compound``: 6/8, major;
a set of melodies is compared with its own family's), so no demo needs the
corpus build. Rebuild it after a change of the corpus or of the features with::

    rlcomposer corpus build
    python experiments/build_style_reference.py

which samples the excerpts of each family through ``resolve_model("corpus")`` and
calls :func:`build_style_reference`, then :func:`save_style_reference`.

The features and histograms are in :mod:`rlcomposer.music.style_features`, the reference in
:mod:`rlcomposer.music.style_reference`; this module reports on a set of melodies and warns
(its public names include theirs). It imports only :mod:`rlcomposer.music` and the foundation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlcomposer.music.melody import Melody
from rlcomposer.music.style_features import (
    FEATURE_LABELS,
    FEATURES,
    MelodyStyleFeatures,
    count_patterns,
    feature_histograms,
    histogram_overlap,
    melody_patterns,
    pattern_count_curve,
    style_features,
    style_histograms,
    subsample,
)
from rlcomposer.music.style_reference import (
    StyleReference,
    default_reference_path,
    load_style_reference,
    save_style_reference,
)

COLLAPSE_THRESHOLDS: dict[str, float] = {
    "monotone_share": 0.10,
    "distinct_melodies": 0.50,
    "pattern_ratio": 0.50,
    "pattern_ratio_to_corpus_with_baseline": 0.80,
    "style_overlap": 0.75,
    "style_overlap_drop": 0.10,
    "feature_overlap": 0.50,
}
"""The limits of :func:`collapse_warnings` (see its docstring for the figures behind them)."""


# ----------------------------------------------------------------------- report
@dataclass(frozen=True)
class StyleReport:
    """Style overlap with the reference and the diversity of one set of melodies."""

    num_melodies: int
    feature_overlap: dict[str, float]
    """Feature name (see :data:`FEATURES`) -> histogram overlap with the reference, 0..1."""
    style_overlap: float
    """Mean of :attr:`feature_overlap`."""
    distinct_melodies: float
    """Share of distinct melodies (by their notes), 0..1."""
    distinct_patterns: int
    """Distinct 4-note patterns (3 intervals + 4 durations) over the whole set."""
    pattern_ratio_to_reference: float
    """:attr:`distinct_patterns` / the reference's count at the same number of melodies."""
    pattern_ratio_to_baseline: float | None
    """The same against the baseline set at the same number of melodies; None without one."""
    longest_run_mean: float
    """Mean over melodies of the longest run of consecutive notes on one pitch."""
    longest_run_max: int
    """The longest such run in the set."""
    monotone_share: float
    """Share of "one pitch repeated" melodies (see the module docstring)."""
    notes_per_melody: float
    """Mean number of notes per melody."""

    @property
    def distinct_pattern_ratio(self) -> float:
        """Against the baseline when there is one, else against the reference."""
        if self.pattern_ratio_to_baseline is not None:
            return self.pattern_ratio_to_baseline
        return self.pattern_ratio_to_reference

    def as_dict(self) -> dict[str, Any]:
        return {
            "num_melodies": self.num_melodies,
            "style_overlap": self.style_overlap,
            "feature_overlap": dict(self.feature_overlap),
            "distinct_melodies": self.distinct_melodies,
            "distinct_patterns": self.distinct_patterns,
            "distinct_pattern_ratio": self.distinct_pattern_ratio,
            "pattern_ratio_to_reference": self.pattern_ratio_to_reference,
            "pattern_ratio_to_baseline": self.pattern_ratio_to_baseline,
            "longest_repeated_pitch_run": {"mean": self.longest_run_mean,
                                           "max": self.longest_run_max},
            "monotone_share": self.monotone_share,
            "notes_per_melody": self.notes_per_melody,
        }


def _report(
    features: Sequence[MelodyStyleFeatures],
    reference: StyleReference,
    baseline: Sequence[MelodyStyleFeatures] | None,
    num_steps: int,
) -> StyleReport:
    histograms = style_histograms(features)
    overlaps = {name: histogram_overlap(histograms[name], reference.histograms[name])
                for name in FEATURES}
    patterns = count_patterns(features)
    expected = reference.expected_patterns(len(features), num_steps)
    baseline_ratio = None
    if baseline is not None and baseline:
        size = min(len(features), len(baseline))
        mine = count_patterns(subsample(features, size))
        theirs = count_patterns(subsample(baseline, size))
        baseline_ratio = mine / theirs if theirs else (math.inf if mine else 1.0)
    runs = [f.longest_run for f in features]
    return StyleReport(
        num_melodies=len(features),
        feature_overlap=overlaps,
        style_overlap=float(np.mean(list(overlaps.values()))),
        distinct_melodies=len({f.key for f in features}) / len(features),
        distinct_patterns=patterns,
        pattern_ratio_to_reference=patterns / expected if expected > 0 else math.nan,
        pattern_ratio_to_baseline=baseline_ratio,
        longest_run_mean=float(np.mean(runs)),
        longest_run_max=int(max(runs)),
        monotone_share=float(np.mean([f.monotone for f in features])),
        notes_per_melody=float(np.mean([len(f.values["duration"]) for f in features])),
    )


def style_report(
    melodies: Iterable[Melody],
    reference: StyleReference | Sequence[Melody] | None = None,
    baseline: Sequence[Melody] | None = None,
    *,
    tonic: int | Sequence[int] | None = None,
) -> StyleReport:
    """Style overlap and diversity of ``melodies``.

    ``reference``: the shipped corpus statistics of the melodies' metre family by default
    (:func:`load_style_reference`; a set is of the family of its first melody), or a
    :class:`StyleReference`, or a set of melodies. ``baseline`` (e.g. the
    prior's melodies) adds :attr:`StyleReport.pattern_ratio_to_baseline`.
    ``tonic``: pitch class of the tonic (0 = C), for all melodies or one per
    melody; None (the default): each melody's own key's. Raises ``ValueError`` for an empty set.
    """
    melodies = list(melodies)
    if not melodies:
        raise ValueError("style_report needs at least one melody, got none")
    if reference is None:
        reference = load_style_reference(family=melodies[0].metre.family)
    elif not isinstance(reference, StyleReference):
        reference = StyleReference.from_melodies(list(reference))
    features = style_features(melodies, tonic)
    baseline_features = style_features(list(baseline)) if baseline is not None else None
    return _report(features, reference, baseline_features, melodies[0].num_steps)


# -------------------------------------------------------------- the reference
REFERENCE_PATTERN_SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def build_style_reference(
    melodies: Sequence[Melody],
    pattern_sampler: Callable[[int], Sequence[Melody]] | None = None,
    *,
    sizes: Sequence[int] = REFERENCE_PATTERN_SIZES,
    repeats: int = 5,
    rng: np.random.Generator | None = None,
    source: Mapping[str, Any] | None = None,
) -> StyleReference:
    """The reference of a corpus: histograms of ``melodies`` and a pattern-count curve.

    ``melodies``: many 4-bar excerpts of the corpus (e.g. ``resolve_model("corpus")
    .sample(8000, 64, rng)`` on the test split). ``pattern_sampler(n)`` draws ``n``
    fresh excerpts the same way, so that the curve counts patterns in sets made
    as the ``corpus`` model makes them; without it, subsets of ``melodies``.
    ``source`` (provenance) goes into the summary.
    """
    melodies = list(melodies)
    rng = rng or np.random.default_rng(0)
    features = style_features(melodies)
    curve = []
    for size in sizes:
        if pattern_sampler is not None:
            counts = [count_patterns(style_features(list(pattern_sampler(size))))
                      for _ in range(repeats)]
            curve.append((int(size), float(np.mean(counts))))
        elif size <= len(melodies):
            curve.extend(pattern_count_curve(melodies, [size], rng, repeats))
    family = melodies[0].metre.family
    reference = StyleReference(style_histograms(features), tuple(curve), melodies[0].num_steps, family=family)
    report = _report(features, reference, None, melodies[0].num_steps)
    summary = {"num_melodies": len(melodies), **(dict(source) if source else {}),
               "report": report.as_dict()}
    return StyleReference(reference.histograms, reference.pattern_curve, reference.num_steps,
                          summary, family)



# --------------------------------------------------------------------- warnings
def collapse_warnings(
    report: StyleReport,
    baseline_report: StyleReport | None = None,
    *,
    name: str = "the melodies",
    baseline_name: str = "the baseline",
) -> list[str]:
    """Plain-language warnings when a set of melodies collapses; empty when all is well.

    ``baseline_report``: the report of the set it is compared with (e.g. the
    prior's), for the distinct-pattern and style-overlap comparisons; ``name``
    and ``baseline_name`` are how the warnings call the two sets.

    Thresholds (:data:`COLLAPSE_THRESHOLDS`), chosen from 4-bar melodies of the
    corpus test split (the ``corpus`` model), the shipped prior, uniform random
    tokens and a collapsed set (E4 in quarter notes, 10% of them a neighbour
    note, 10% split into eighths, 5% rests), 1000 each unless said otherwise:

    ==================  =======  =====  ======  =========
    figure              corpus   prior  random  collapsed
    ==================  =======  =====  ======  =========
    style overlap       0.97     0.93   0.25    0.25
    monotone share      0.7%     1.7%   0%      99.8%
    distinct melodies   75%      100%   100%    95%
    patterns / corpus   0.99     1.67   2.01    0.06
    patterns / prior    0.60     1.00   1.21    0.04
    ==================  =======  =====  ======  =========

    * ``monotone_share`` > 10%: "the melodies collapse: x% of them are one pitch
      repeated". The corpus and the prior have 0-4% even at 50 melodies.
    * ``distinct_melodies`` < 50%: the set repeats itself (a policy that found a
      few melodies). The prior and random are all distinct; the ``corpus`` model
      repeats excerpts because the test split has only ~2,000 distinct 4-bar
      excerpts (75% distinct at 1000, 58% at 2000; it would warn from ~4000).
    * distinct 4-note patterns: with a musical baseline (its own style overlap
      at least ``style_overlap``; a noise baseline has a new pattern at every
      note), under 50% of the baseline's at the same number of melodies *and*
      under 80% of the corpus's; otherwise under 50% of the corpus's. The second
      condition is there because the corpus curve saturates (its excerpts share
      bars): the corpus has 0.9-1.07× the prior's patterns up to 300 melodies but
      0.60× at 1000 and 0.42× at 2000, while its ratio to its own curve stays
      ~1.0. The prior has 1.0-1.16× the corpus's patterns up to 300 melodies
      (1.67× at 1000), the collapsed set 0.04-0.06×.
    * style overlap more than 0.10 below the baseline's, or (without a baseline,
      or above it) below 0.75. Sampling noise alone moves the overlap by about
      0.02 (at 50 melodies the corpus and the prior both have ~0.89, at 300
      ~0.95 and ~0.92), so a drop of 0.10 is a real change of style; 0.75 lies
      halfway between the prior and random or collapsed sets (~0.25). The
      features whose overlap is under 0.5 are named.
    """
    limits = COLLAPSE_THRESHOLDS
    warnings: list[str] = []
    if report.monotone_share > limits["monotone_share"]:
        warnings.append(
            f"{name} collapse: {100 * report.monotone_share:.0f}% of them are one pitch repeated "
            f"(longest run of one pitch: {report.longest_run_mean:.1f} notes on average, "
            f"{report.longest_run_max} at most)")
    if report.distinct_melodies < limits["distinct_melodies"]:
        warnings.append(
            f"{name} repeat themselves: only {100 * report.distinct_melodies:.0f}% of "
            f"{report.num_melodies} are distinct")
    baseline_is_music = (baseline_report is not None
                         and baseline_report.style_overlap >= limits["style_overlap"])
    to_corpus = report.pattern_ratio_to_reference
    to_baseline = report.pattern_ratio_to_baseline
    if to_baseline is not None and baseline_is_music:
        if (to_baseline < limits["pattern_ratio"]
                and to_corpus < limits["pattern_ratio_to_corpus_with_baseline"]):
            warnings.append(
                f"distinct 4-note patterns of {name} fell to {100 * to_baseline:.0f}% of "
                f"{baseline_name}'s ({report.distinct_patterns} in {report.num_melodies} "
                f"melodies; {100 * to_corpus:.0f}% of the corpus's)")
    elif to_corpus < limits["pattern_ratio"]:
        warnings.append(
            f"distinct 4-note patterns of {name} fell to {100 * to_corpus:.0f}% of the "
            f"corpus's ({report.distinct_patterns} in {report.num_melodies} melodies)")
    low = [f"{FEATURE_LABELS[f]} {v:.2f}" for f, v in report.feature_overlap.items()
           if v < limits["feature_overlap"]]
    detail = f" (lowest: {', '.join(low)})" if low else ""
    if (baseline_report is not None
            and baseline_report.style_overlap - report.style_overlap > limits["style_overlap_drop"]):
        warnings.append(
            f"style overlap of {name} {report.style_overlap:.2f} is far below "
            f"{baseline_name}'s {baseline_report.style_overlap:.2f}{detail}")
    elif report.style_overlap < limits["style_overlap"]:
        warnings.append(
            f"style overlap of {name} with the corpus is only {report.style_overlap:.2f} "
            f"(the corpus's own excerpts: ~0.95){detail}")
    return warnings


__all__ = [
    "COLLAPSE_THRESHOLDS",
    "FEATURES",
    "FEATURE_LABELS",
    "StyleReference",
    "StyleReport",
    "build_style_reference",
    "collapse_warnings",
    "default_reference_path",
    "feature_histograms",
    "histogram_overlap",
    "load_style_reference",
    "melody_patterns",
    "pattern_count_curve",
    "save_style_reference",
    "style_report",
]
