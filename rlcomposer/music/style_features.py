"""What a melody contributes to the style measures of :mod:`rlcomposer.music.style`: the values of
the five features (:data:`FEATURES`: intervals, durations, scale degrees, range, notes per bar), its
4-note patterns and its longest run of one pitch, read from its sounding notes
(:func:`~rlcomposer.music.notes.note_events`); histograms of a set and their overlap.

Bars are the melody's own (``steps_per_bar`` of its metre, the whole bars after its pick-up) and
scale degrees count from its key's tonic unless a tonic is given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rlcomposer.music.melody import Melody
from rlcomposer.music.notes import note_events

FEATURES: dict[str, tuple[int, int]] = {
    "interval": (-12, 12),
    "duration": (1, 16),
    "scale_degree": (0, 11),
    "range": (0, 24),
    "notes_per_bar": (0, 16),
}
"""Feature name -> (lowest, highest) integer bin; values outside are clipped into the end bins."""

FEATURE_LABELS: dict[str, str] = {
    "interval": "intervals",
    "duration": "durations",
    "scale_degree": "scale degrees",
    "range": "range",
    "notes_per_bar": "notes per bar",
}

PATTERN_NOTES = 4
"""Notes in a pattern of :func:`melody_patterns`."""

# "One pitch repeated": see collapse_warnings in rlcomposer.music.style for how they were chosen.
MONOTONE_RUN = 8
"""A melody with this many consecutive notes on one pitch is "one pitch repeated"."""
MONOTONE_PITCH_SHARE = 0.6
"""... as is one where one pitch carries this share of the notes (of at least MONOTONE_MIN_NOTES)."""
MONOTONE_MIN_NOTES = 6


@dataclass(frozen=True)
class MelodyStyleFeatures:
    """The values one melody contributes (all plain ints)."""

    key: tuple
    values: dict[str, list[int]]
    patterns: list[tuple[int, ...]]
    longest_run: int
    monotone: bool


def _clip(value: int, feature: str) -> int:
    low, high = FEATURES[feature]
    return min(max(int(value), low), high)


def melody_style_features(melody: Melody, tonic: int | None = None) -> MelodyStyleFeatures:
    """The values ``melody`` contributes; ``tonic`` (pitch class) defaults to its key's tonic."""
    if tonic is None:
        tonic = melody.key.tonic_pitch_class
    onsets, pitch_array, lengths = note_events(melody.tokens)
    pitches = pitch_array.tolist()
    durations = [_clip(length, "duration") for length in lengths.tolist()]
    intervals = [_clip(b - a, "interval") for a, b in zip(pitches, pitches[1:], strict=False)]
    bar, first = melody.metre.steps_per_bar, melody.pickup_steps  # whole bars after the pick-up
    whole_bars = (melody.num_steps - first) // bar
    counted = onsets[onsets >= first] - first
    per_bar = np.bincount(counted // bar, minlength=whole_bars)[:whole_bars]
    values = {
        "interval": intervals,
        "duration": durations,
        "scale_degree": [(p - tonic) % 12 for p in pitches],
        "range": [_clip(max(pitches) - min(pitches), "range")] if pitches else [],
        "notes_per_bar": [_clip(int(c), "notes_per_bar") for c in per_bar],
    }
    patterns = [
        tuple(intervals[i:i + PATTERN_NOTES - 1]) + tuple(durations[i:i + PATTERN_NOTES])
        for i in range(len(pitches) - PATTERN_NOTES + 1)
    ]
    longest = run = 0
    for index, pitch in enumerate(pitches):
        run = run + 1 if index and pitch == pitches[index - 1] else 1
        longest = max(longest, run)
    top_share = max(np.bincount(pitches)) / len(pitches) if pitches else 0.0
    monotone = longest >= MONOTONE_RUN or (
        len(pitches) >= MONOTONE_MIN_NOTES and top_share >= MONOTONE_PITCH_SHARE)
    key = (melody.num_steps, tuple(zip(pitches, onsets.tolist(), lengths.tolist(), strict=True)))
    return MelodyStyleFeatures(key, values, patterns, longest, bool(monotone))


def tonics_per_melody(tonic: int | Sequence[int] | None, count: int) -> list[int | None]:
    """One tonic per melody (None: each melody's own key's)."""
    if tonic is None:
        return [None] * count
    if isinstance(tonic, int | np.integer):
        return [int(tonic) % 12] * count
    tonics = [int(t) % 12 for t in tonic]
    if len(tonics) != count:
        raise ValueError(f"{len(tonics)} tonics for {count} melodies")
    return tonics


def style_features(melodies: Sequence[Melody], tonic: int | Sequence[int] | None = None
                   ) -> list[MelodyStyleFeatures]:
    return [melody_style_features(m, t) for m, t in zip(melodies, tonics_per_melody(tonic, len(melodies)),
                                                      strict=True)]


def feature_histograms(
    melodies: Iterable[Melody], tonic: int | Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """Each feature's histogram over the set, normalised to sum 1 (all zeros if it has no values).

    ``tonic`` is the tonic's pitch class (0 = C), for all melodies or one per melody; None (the
    default): each melody's own key's.
    """
    return style_histograms(style_features(list(melodies), tonic))


def style_histograms(features: Sequence[MelodyStyleFeatures]) -> dict[str, np.ndarray]:
    result = {}
    for name, (low, high) in FEATURES.items():
        values = [v - low for f in features for v in f.values[name]]
        result[name] = normalise_counts(np.bincount(np.asarray(values, dtype=np.int64),
                                              minlength=high - low + 1).astype(np.float64))
    return result


def normalise_counts(counts: np.ndarray) -> np.ndarray:
    total = float(counts.sum())
    return counts / total if total > 0 else np.zeros_like(counts, dtype=np.float64)


def histogram_overlap(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """The overlapping area ``Σ min(p, q)`` of two histograms over the same bins.

    Both are normalised first (counts are fine); symmetric, in [0, 1]; 0 when
    either is empty (a set without intervals shares nothing with one that has them).
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms over different bins: {p.shape} and {q.shape}")
    if np.any(p < 0) or np.any(q < 0):
        raise ValueError("histograms cannot have negative counts")
    return float(min(1.0, np.minimum(normalise_counts(p), normalise_counts(q)).sum()))


# ------------------------------------------------------------ distinct patterns
def melody_patterns(melody: Melody) -> list[tuple[int, ...]]:
    """The 4-note patterns of a melody: (3 intervals, 4 durations in sixteenths), clipped."""
    return melody_style_features(melody).patterns


def count_patterns(features: Sequence[MelodyStyleFeatures]) -> int:
    return len({p for f in features for p in f.patterns})


def subsample(items: Sequence, count: int, seed: int = 0) -> list:
    if count >= len(items):
        return list(items)
    chosen = np.random.default_rng(seed).choice(len(items), size=count, replace=False)
    return [items[i] for i in sorted(chosen)]


def pattern_count_curve(
    melodies: Sequence[Melody],
    sizes: Sequence[int],
    rng: np.random.Generator,
    repeats: int = 5,
) -> list[tuple[int, float]]:
    """Mean distinct 4-note patterns in random subsets of ``size`` melodies, per size."""
    features = style_features(list(melodies))
    curve = []
    for size in sizes:
        if size > len(features):
            break
        counts = []
        for _ in range(repeats if size < len(features) else 1):
            chosen = rng.choice(len(features), size=size, replace=False)
            counts.append(count_patterns([features[i] for i in chosen]))
        curve.append((int(size), float(np.mean(counts))))
    return curve


__all__ = [
    "FEATURES", "FEATURE_LABELS", "MONOTONE_MIN_NOTES", "MONOTONE_PITCH_SHARE", "MONOTONE_RUN", "PATTERN_NOTES",
    "MelodyStyleFeatures", "count_patterns", "feature_histograms", "histogram_overlap", "melody_patterns",
    "melody_style_features", "normalise_counts", "pattern_count_curve", "style_features", "style_histograms",
    "subsample",
]
