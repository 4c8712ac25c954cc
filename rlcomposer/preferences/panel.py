"""The panel: a seeded family of simulated listeners that nobody tuned anything to.

The three built-in listeners (:mod:`rlcomposer.preferences.listeners`) are the
tastes the tuning was developed against; results are judged by this panel.
Listener ``panel:K`` is member ``K`` of :data:`PANEL_SIZE`. Members 0-23 are made
by the same recipe from :data:`PANEL_SEED` and ``K`` (members 24-35, who hear the
metre, by theirs: see the end of this docstring):

1. **Features.** :func:`features` computes :data:`FEATURES` (24 numbers) from the
   tokens, with numpy, vectorised over melodies: contour, intervals, steps and
   leaps, leap resolution, register, range, note lengths and their variety,
   syncopation, dotted rhythms, rests, tonality, cadence, climax position, motif
   and rhythm repetition, phrase arch, density, pitch-class variety, downbeat
   triad notes. They are written here, independent of ``music.metrics`` and of
   the reward model's descriptors.
2. **The prior's distribution.** Feature quantiles come from a fixed reference
   set of 2000 melodies of the shipped prior, *shipped* as tokens in
   ``rlcomposer/data/panel_reference.json`` (so members do not change when the
   prior is retrained). :func:`write_reference` regenerates the file (see it).
   ``Q_f(q)`` is feature ``f``'s prior quantile, extended linearly beyond
   ``q ∈ [0.02, 0.98]`` (slope: the 10-90% spread per 0.8), so ``q < 0`` or
   ``q > 1`` means "beyond anything the prior usually does".
3. **Member k** draws, from ``np.random.default_rng([PANEL_SEED, k])``:
   a *distance* ``d_k = (k mod 12 + u) / 12`` (``u`` uniform; stratified, so both
   halves of the panel span near to far); Dirichlet(0.5) weights ``w`` over the
   features; per feature a kind (a *band* around an ideal, with probability 0.7;
   else a one-sided threshold, *at least* or *at most*), a side ``s = ±1`` (for a
   threshold, its direction), the ideal's prior quantile
   ``q = 0.5 + s · d_k · U(0.3, 1) · 0.75 + N(0, 0.05)`` and the ideal ``Q_f(q)``
   (clipped to the feature's bounds), and a tolerance ``U(0.25, 0.75)`` times the
   feature's prior 10-90% spread; then 2-3 *interactions* from :data:`INTERACTIONS`
   (products of two one-sided satisfactions, e.g. "leaps are fine if they
   resolve", "long notes with a cadence"), each thresholded at the prior quantile
   ``0.5 ± d_k · U(0, 0.45)`` and weighted ``U(0.2, 0.4)``.
4. **Score.** A band's satisfaction is ``1 / (1 + ((x - ideal) / tolerance)²)``; a
   threshold's is a logistic of ``±(x - threshold) / (tolerance / 4)``. The raw
   taste is ``Σ w_f sat_f + Σ c_i sat_a sat_b``: non-linear in the features by
   construction (a least-squares linear fit of a member's score on these very
   features explains 40-85% of its variance on prior melodies, not all of it).
   The score is ``(raw - mean) / std`` over the reference set (mean 0, standard
   deviation 1 on the reference prior melodies) minus
   :func:`~rlcomposer.preferences.boredom.boredom` (shared by every listener).

Each member reports how far its taste is from the prior
(:attr:`PanelListener.distance`: the weighted mean over features of
:func:`ideal_distance`, ``2 |r - 0.5|`` for an ideal at mid-rank ``r`` among the
reference melodies; 0 = at the prior's medians, 1 = at its extremes, more =
beyond them). :attr:`PanelListener.recipe_distance` is ``d_k``.

**The split** (made once, before any method was compared): members
:data:`CHOOSE_MEMBERS` (0-11) may be used to choose defaults, settings and
methods; members :data:`REPORT_MEMBERS` (12-23) are used only to report results,
never to choose anything.

**Members who hear the metre** (24-35, :mod:`rlcomposer.preferences.metre_panel`):
members 0-23 read every melody as 4/4 in C from step 0, whatever its metre, and
keep doing so (their meaning is fixed). Members 24-35 hear each melody in its own
metre, key and pick-up (beats, bar lines, the figure each beat is divided into,
chord tones of its key), each with a signature taste (the jig's long-short lilt,
the waltz's lengthened downbeat, no syncopation against the real beat). They join
the split the same way: the even ones (24, 26, ..., 34) choose, the odd ones
(25, 27, ..., 35) report.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from rlcomposer.music.melody import STEPS_PER_BAR, STEPS_PER_QUARTER, Melody
from rlcomposer.music.notes import note_grid
from rlcomposer.preferences.boredom import boredom_of_grid
from rlcomposer.preferences.listener_errors import ListenerError
from rlcomposer.preferences.panel_reference import (  # noqa: F401 (public here since the panel began)
    PANEL_SEED,
    REFERENCE_FORMAT,
    REFERENCE_PATH,
    REFERENCE_SEED,
    reference_tokens,
)
from rlcomposer.preferences.taste_shapes import (
    AT_LEAST,
    AT_MOST,
    BAND,
    KIND_NAMES,
    QUANTILE_LEVELS,
    extended_quantile,
    quantile_spread,
    satisfaction,
    share,
)

ORIGINAL_SIZE = 24
"""Members 0-23: the feature-bank members that read every melody as 4/4 in C."""
ORIGINAL_MEMBERS: tuple[int, ...] = tuple(range(ORIGINAL_SIZE))
_HALF = ORIGINAL_SIZE // 2  # the distance strata of members 0-23 (fixed: part of their recipe)
PANEL_SIZE = 36
"""Members 0..35: 0-23 (this module) and 24-35, who hear the metre (:mod:`~rlcomposer.preferences.metre_panel`)."""
METRE_MEMBERS: tuple[int, ...] = tuple(range(ORIGINAL_SIZE, PANEL_SIZE))
"""Members who hear each melody in its own metre, key and pick-up."""
CHOOSE_MEMBERS: tuple[int, ...] = tuple(range(_HALF)) + METRE_MEMBERS[0::2]
"""Members that may be used to choose defaults and methods (0-11, and 24, 26, ..., 34)."""
REPORT_MEMBERS: tuple[int, ...] = tuple(range(_HALF, ORIGINAL_SIZE)) + METRE_MEMBERS[1::2]
"""Members used only to report results (12-23, and 25, 27, ..., 35)."""


# ------------------------------------------------------------------ features
_C_MAJOR = np.zeros(12, dtype=bool)
_C_MAJOR[[0, 2, 4, 5, 7, 9, 11]] = True
_TRIADS = np.zeros(12, dtype=bool)
_TRIADS[[0, 4, 7, 9]] = True  # C major and A minor triads
_ENDING = np.zeros(12)
_ENDING[[0, 9]] = 1.0  # the tonic of C major or A minor
_ENDING[[4, 7]] = 0.5  # another note of the tonic triads
_DURATION_CLASS = np.full(STEPS_PER_BAR * 8 + 1, 6)
_DURATION_CLASS[[1, 2, 3, 4, 6, 8]] = np.arange(6)  # 16th, 8th, dotted 8th, quarter, dotted quarter, half
_POPCOUNT = np.array([bin(i).count("1") for i in range(4096)])


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    low: float  # the feature's bounds, for clipping ideals
    high: float
    floor: float  # the smallest tolerance scale (features with a narrow prior distribution)


FEATURES: tuple[Feature, ...] = (
    Feature("rising", "share of rising moves among rising and falling ones", 0, 1, 0.05),
    Feature("direction_changes", "share of consecutive moves that turn (up then down or down then up)", 0, 1, 0.05),
    Feature("mean_interval", "mean absolute interval between consecutive notes (semitones)", 0, 24, 0.3),
    Feature("steps", "share of intervals of 1-2 semitones", 0, 1, 0.05),
    Feature("leaps", "share of intervals of 5 semitones or more", 0, 1, 0.05),
    Feature("repeats", "share of repeated notes (interval 0)", 0, 1, 0.05),
    Feature("leap_resolution", "share of leaps followed by a step the other way (1 without leaps)", 0, 1, 0.1),
    Feature("register", "mean MIDI pitch", 48, 84, 1.0),
    Feature("range", "highest minus lowest pitch (semitones)", 0, 36, 1.0),
    Feature("mean_duration", "mean note length (beats)", 0.25, 4, 0.1),
    Feature("duration_variety", "entropy of the note lengths (bits, 7 classes)", 0, math.log2(7), 0.1),
    Feature("syncopation", "share of notes starting off the beat and held across the next beat", 0, 1, 0.03),
    Feature("dotted", "share of consecutive note pairs long-short in the ratio 3:1", 0, 1, 0.03),
    Feature("rests", "share of silent steps", 0, 1, 0.03),
    Feature("in_key", "share of notes in C major / A minor", 0, 1, 0.03),
    Feature("cadence", "last note: 1 on the tonic C or A, 0.5 on E or G, else 0", 0, 1, 0.25),
    Feature("final_length", "length of the last note (beats)", 0.25, 16, 0.25),
    Feature("climax_position", "where the (first) highest note starts, 0-1 through the melody", 0, 1, 0.05),
    Feature("motif_repetition", "share of 4-note cells (3 intervals, 3 lengths) that recur", 0, 1, 0.05),
    Feature("rhythm_repetition", "share of bars after the first whose onset pattern repeats an earlier bar", 0, 1, 0.1),
    Feature("arch", "mean pitch of the middle half minus the outer quarters (semitones)", -24, 24, 1.0),
    Feature("density", "notes per beat", 0, 4, 0.1),
    Feature("pitch_classes", "number of distinct pitch classes", 0, 12, 0.5),
    Feature("downbeat_triad", "share of notes on half-bar downbeats in the C / Am triads (0.5 without)", 0, 1, 0.05),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
NUM_FEATURES = len(FEATURES)
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}




def features(tokens: np.ndarray | Melody | Sequence[Melody]) -> np.ndarray:
    """The feature bank ``[N, NUM_FEATURES]`` of token arrays ``[N, T]`` (or ``[T]``, or melodies)."""
    return _features_and_boredom(_as_tokens(tokens))[0]


_CHUNK = 4096


def _features_and_boredom(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[N, F]`` and boredom ``[N]``, in chunks (bounded memory)."""
    parts = []
    for start in range(0, tokens.shape[0], _CHUNK):
        values, grid = _features_of(note_grid(tokens[start:start + _CHUNK]))
        parts.append((values, boredom_of_grid(grid)))
    if not parts:
        return np.empty((0, NUM_FEATURES)), np.empty(0)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([v for v, _ in parts]), np.concatenate([b for _, b in parts])


def _as_tokens(tokens) -> np.ndarray:
    if isinstance(tokens, Melody):
        return np.asarray(tokens.tokens, dtype=np.int64)[None, :]
    if isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], Melody):
        lengths = {m.num_steps for m in tokens}
        if len(lengths) > 1:
            raise ListenerError(f"melodies of {len(lengths)} different lengths cannot be scored as one "
                                "array: group them by length")
        return np.stack([m.tokens for m in tokens]).astype(np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    return tokens[None, :] if tokens.ndim == 1 else tokens


def _features_of(grid) -> tuple[np.ndarray, object]:
    pitch, onset, duration, valid, count = grid.pitch, grid.onset, grid.duration, grid.valid, grid.count
    num, width = pitch.shape
    steps = grid.num_steps
    rows = np.arange(num)
    out = np.empty((num, NUM_FEATURES))
    f = _INDEX

    interval = np.diff(pitch, axis=1)
    has_interval = valid[:, 1:]
    n_intervals = np.maximum(count - 1, 0)
    size = np.abs(interval)
    up = (interval > 0) & has_interval
    down = (interval < 0) & has_interval
    n_up, n_down = up.sum(axis=1), down.sum(axis=1)
    out[:, f["rising"]] = share(n_up, n_up + n_down, 0.5)
    moving = up | down
    both = moving[:, 1:] & moving[:, :-1]
    turns = both & (np.sign(interval[:, 1:]) != np.sign(interval[:, :-1]))
    out[:, f["direction_changes"]] = share(turns.sum(axis=1), both.sum(axis=1), 0.0)
    out[:, f["mean_interval"]] = share(np.where(has_interval, size, 0).sum(axis=1), n_intervals, 0.0)
    step = has_interval & (size >= 1) & (size <= 2)
    leap = has_interval & (size >= 5)
    out[:, f["steps"]] = share(step.sum(axis=1), n_intervals, 0.0)
    out[:, f["leaps"]] = share(leap.sum(axis=1), n_intervals, 0.0)
    out[:, f["repeats"]] = share((has_interval & (size == 0)).sum(axis=1), n_intervals, 0.0)
    followed = leap[:, :-1] & has_interval[:, 1:]
    resolved = followed & step[:, 1:] & (np.sign(interval[:, 1:]) == -np.sign(interval[:, :-1]))
    out[:, f["leap_resolution"]] = share(resolved.sum(axis=1), followed.sum(axis=1), 1.0)

    masked_pitch = np.where(valid, pitch, 0)
    out[:, f["register"]] = share(masked_pitch.sum(axis=1), count, 66.0)
    high = np.where(valid, pitch, -1).max(axis=1)
    low = np.where(valid, pitch, 1000).min(axis=1)
    out[:, f["range"]] = np.where(count > 0, high - low, 0)

    beats = duration / STEPS_PER_QUARTER
    out[:, f["mean_duration"]] = share(np.where(valid, beats, 0).sum(axis=1), count, 0.25)
    classes = _DURATION_CLASS[np.minimum(duration, _DURATION_CLASS.size - 1)]
    histogram = np.bincount((rows[:, None] * 7 + classes)[valid], minlength=num * 7).reshape(num, 7)
    p = histogram / np.maximum(count, 1)[:, None]
    out[:, f["duration_variety"]] = -(p * np.log2(np.where(p > 0, p, 1))).sum(axis=1)
    offbeat = onset % STEPS_PER_QUARTER != 0
    crosses = onset % STEPS_PER_QUARTER + duration > STEPS_PER_QUARTER
    out[:, f["syncopation"]] = share((valid & offbeat & crosses).sum(axis=1), count, 0.0)
    pairs = has_interval
    dotted = pairs & (duration[:, :-1] == 3 * duration[:, 1:])
    out[:, f["dotted"]] = share(dotted.sum(axis=1), n_intervals, 0.0)
    out[:, f["rests"]] = grid.silent.mean(axis=1)

    pitch_class = pitch % 12
    out[:, f["in_key"]] = share((valid & _C_MAJOR[pitch_class]).sum(axis=1), count, 0.0)
    last = np.maximum(count - 1, 0)
    out[:, f["cadence"]] = np.where(count > 0, _ENDING[pitch_class[rows, last]], 0.0)
    out[:, f["final_length"]] = np.where(count > 0, beats[rows, last], 0.25)
    top = np.argmax(np.where(valid, pitch, -1), axis=1)
    out[:, f["climax_position"]] = np.where(count > 0, onset[rows, top] / steps, 0.5)

    # 4-note cells: 3 intervals and the first 3 lengths, hashed; a cell recurs if another equals it
    cells = width - 3
    if cells > 0:
        key = np.zeros((num, cells), dtype=np.int64)
        for j in range(3):
            key = key * 97 + (interval[:, j:j + cells] + 48)
        for j in range(3):
            key = key * 131 + np.minimum(duration[:, j:j + cells], 130)
        in_cell = valid[:, 3:]
        key = np.where(in_cell, key, -1 - np.arange(cells)[None, :])  # padding: all different
        ordered = np.sort(key, axis=1)
        same = ordered[:, 1:] == ordered[:, :-1]
        recurs = np.zeros_like(ordered, dtype=bool)
        recurs[:, 1:] |= same
        recurs[:, :-1] |= same
        recurs &= ordered >= 0
        out[:, f["motif_repetition"]] = share(recurs.sum(axis=1), np.maximum(count - 3, 0), 0.0)
    else:
        out[:, f["motif_repetition"]] = 0.0

    bars = steps // STEPS_PER_BAR
    if bars >= 2:
        onset_steps = np.zeros((num, steps), dtype=bool)
        onset_steps[np.nonzero(valid)[0], onset[valid]] = True
        pattern = onset_steps[:, :bars * STEPS_PER_BAR].reshape(num, bars, STEPS_PER_BAR)
        packed = (pattern * (1 << np.arange(STEPS_PER_BAR))).sum(axis=2)
        earlier = np.triu(np.ones((bars, bars), dtype=bool), 1)  # [i, j]: bar i before bar j
        equal = packed[:, :, None] == packed[:, None, :]
        repeats = (equal & earlier[None]).any(axis=1)[:, 1:]
        out[:, f["rhythm_repetition"]] = repeats.mean(axis=1)
    else:
        out[:, f["rhythm_repetition"]] = 0.0

    middle = valid & (onset >= steps / 4) & (onset < 3 * steps / 4)
    outer = valid & ~middle
    n_middle, n_outer = middle.sum(axis=1), outer.sum(axis=1)
    mean_middle = share(np.where(middle, pitch, 0).sum(axis=1), n_middle, 0.0)
    mean_outer = share(np.where(outer, pitch, 0).sum(axis=1), n_outer, 0.0)
    out[:, f["arch"]] = np.where((n_middle > 0) & (n_outer > 0), mean_middle - mean_outer, 0.0)
    out[:, f["density"]] = count / (steps / STEPS_PER_QUARTER)
    bits = np.bitwise_or.reduce(np.where(valid, 1 << pitch_class, 0), axis=1)
    out[:, f["pitch_classes"]] = _POPCOUNT[bits]
    downbeat = valid & (onset % (STEPS_PER_BAR // 2) == 0)
    out[:, f["downbeat_triad"]] = share((downbeat & _TRIADS[pitch_class]).sum(axis=1),
                                         downbeat.sum(axis=1), 0.5)
    return out, grid


# ------------------------------------------------------------- the reference
def write_reference(path: str | Path = REFERENCE_PATH, num_melodies: int = 2000, num_steps: int = 64,
                    seed: int = REFERENCE_SEED, model: str = "prior") -> Path:
    """(Re)write the panel's reference file: ``num_melodies`` samples of ``model``.

    ``python -c "from rlcomposer.preferences.panel import write_reference; write_reference()"``
    regenerates the shipped file from the shipped prior. Doing so changes every
    member (their ideals sit at the reference's quantiles): pinned in
    ``tests/test_panel.py``, so do it only on purpose.
    """
    from rlcomposer.prior.registry import resolve_model

    melodies = resolve_model(model).sample(num_melodies, num_steps, np.random.default_rng(seed))
    tokens = np.stack([m.tokens for m in melodies]).astype(np.uint8)
    data = {
        "format": REFERENCE_FORMAT, "version": 1, "model": model, "seed": seed,
        "num_melodies": num_melodies, "num_steps": num_steps,
        "description": "tokens of prior melodies (uint8, row-major, zlib, base64): the panel's "
                       "reference for feature quantiles and score scaling",
        "tokens_zlib_base64": base64.b64encode(zlib.compress(tokens.tobytes(), 9)).decode("ascii"),
    }
    path = Path(path)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


@lru_cache(maxsize=1)
def reference_features() -> np.ndarray:
    """:func:`features` of the reference melodies (computed once per process)."""
    values = features(reference_tokens())
    values.setflags(write=False)
    return values




@lru_cache(maxsize=1)
def reference_quantiles() -> np.ndarray:
    """Quantiles ``[NUM_FEATURES, 51]`` of the reference features at :data:`QUANTILE_LEVELS`."""
    values = np.quantile(reference_features(), QUANTILE_LEVELS, axis=0).T
    values.setflags(write=False)
    return values


def _spread(quantiles: np.ndarray, feature: int) -> float:
    """The prior's 10-90% spread of a feature, at least the feature's floor."""
    return quantile_spread(quantiles[feature], FEATURES[feature].floor)


def prior_quantile_value(feature: int, level: float) -> float:
    """``Q_f(level)``: the prior's quantile, extended linearly beyond [0.02, 0.98]."""
    spec = FEATURES[feature]
    return extended_quantile(reference_quantiles()[feature], level, spec.floor, spec.low, spec.high)


def ideal_distance(values: np.ndarray) -> np.ndarray:
    """Per feature, how far ``values`` ``[NUM_FEATURES]`` sit from the prior: ``2 |r - 0.5|``
    with ``r`` the value's mid-rank among the reference melodies (ties count half), plus,
    beyond the reference's extremes, 2 per 10-90% spread / 0.8 beyond them."""
    reference = reference_features()
    values = np.asarray(values, dtype=np.float64)
    rank = (reference < values).mean(axis=0) + 0.5 * (reference == values).mean(axis=0)
    quantiles = reference_quantiles()
    unit = np.array([_spread(quantiles, f) for f in range(NUM_FEATURES)]) / 0.8
    beyond = np.maximum(np.maximum(values - reference.max(axis=0), reference.min(axis=0) - values), 0.0)
    return 2.0 * np.abs(rank - 0.5) + 2.0 * beyond / unit


# ------------------------------------------------------------------- members
_TOLERANCE = (0.25, 0.75)  # times the prior's 10-90% spread
_BAND_SHARE = 0.7  # the probability that a feature's preference is a band (else a threshold)
_INTERACTION_WEIGHT = (0.2, 0.4)
_MEMO_SIZE = 1 << 16

INTERACTIONS: tuple[tuple[str, int, str, int, str], ...] = (
    ("leaps", AT_LEAST, "leap_resolution", AT_LEAST, "leaps are fine if they resolve"),
    ("mean_duration", AT_LEAST, "cadence", AT_LEAST, "long notes with a cadence"),
    ("syncopation", AT_LEAST, "in_key", AT_LEAST, "syncopation over a clear key"),
    ("range", AT_LEAST, "arch", AT_LEAST, "a wide range shaped as an arch"),
    ("motif_repetition", AT_LEAST, "duration_variety", AT_LEAST, "repeated motifs in a varied rhythm"),
    ("climax_position", AT_LEAST, "final_length", AT_LEAST, "a late climax, then a long last note"),
    ("density", AT_LEAST, "rests", AT_LEAST, "busy phrases separated by rests"),
    ("register", AT_MOST, "steps", AT_LEAST, "low and stepwise"),
    ("in_key", AT_MOST, "steps", AT_LEAST, "chromatic notes approached by step"),
)
"""Pairs a member may reward together: (feature, kind, feature, kind, meaning)."""




@dataclass(eq=False)
class PanelListener:
    """Panel member ``index``: a listener function ``Melody -> float`` (picklable).

    ``score_tokens(tokens [N, T])`` scores many melodies at once (the fast path);
    ``score_batch(melodies)`` is what :func:`~rlcomposer.preferences.reward_functions.score_melodies`
    uses. Scores have mean 0 and standard deviation 1 on the reference prior
    melodies, before :func:`~rlcomposer.preferences.boredom.boredom` is subtracted.
    """

    index: int
    recipe_distance: float  # d_k of the recipe, 0 (near the prior) .. 1 (far)
    weights: np.ndarray  # [NUM_FEATURES], sums to 1
    kinds: np.ndarray  # [NUM_FEATURES]: BAND, AT_LEAST or AT_MOST
    ideal_levels: np.ndarray  # [NUM_FEATURES]: the prior quantile of each ideal / threshold
    ideals: np.ndarray  # [NUM_FEATURES]: ideal value (band) or threshold, in feature units
    tolerances: np.ndarray  # [NUM_FEATURES], in feature units
    interactions: tuple[tuple[int, int, float, float, int, int, float, float, float], ...]
    """(feature a, kind a, threshold a, tolerance a, feature b, kind b, threshold b, tolerance b, weight)."""
    interaction_names: tuple[str, ...]
    center: float = 0.0
    scale: float = 1.0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"panel:{self.index}"
        self.__name__ = self.name  # reads like a function where one is expected
        self._memo: dict[bytes, float] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_memo"] = {}  # a cache, not part of the member
        return state

    @property
    def distance(self) -> float:
        """How far its ideals sit from the prior's typical values (0 = at the medians, 1 = at the
        extremes, more = beyond): see :func:`ideal_distance`."""
        return float(np.sum(self.weights * ideal_distance(self.ideals)))

    def satisfactions(self, values: np.ndarray) -> np.ndarray:
        """Each term's satisfaction (0..1) of feature rows ``[N, NUM_FEATURES]``: ``[N, NUM_FEATURES +
        len(interactions)]``, the features' then each interaction's (the product of its two)."""
        single = satisfaction(values, self.kinds, self.ideals, self.tolerances)
        pairs = [satisfaction(values[:, a], np.asarray(kind_a), threshold_a, tolerance_a)
                 * satisfaction(values[:, b], np.asarray(kind_b), threshold_b, tolerance_b)
                 for a, kind_a, threshold_a, tolerance_a, b, kind_b, threshold_b, tolerance_b, _ in self.interactions]
        return np.column_stack([single, *pairs])

    def raw(self, values: np.ndarray) -> np.ndarray:
        """The unscaled taste of feature rows ``[N, NUM_FEATURES]``."""
        satisfied = self.satisfactions(values)
        total = satisfied[:, :len(self.weights)] @ self.weights
        for number, interaction in enumerate(self.interactions):
            total = total + interaction[-1] * satisfied[:, len(self.weights) + number]
        return total

    def score_features(self, values: np.ndarray, bored: np.ndarray | None = None) -> np.ndarray:
        scores = (self.raw(values) - self.center) / self.scale
        return scores if bored is None else scores - bored

    def score_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Scores ``[N]`` of token arrays ``[N, T]``."""
        values, bored = _features_and_boredom(_as_tokens(tokens))
        return self.score_features(values, bored)

    def score_batch(self, melodies: Sequence[Melody]) -> np.ndarray:
        """Scores of melodies (of any lengths: scored in groups of equal length)."""
        melodies = list(melodies)
        result = np.empty(len(melodies))
        by_length: dict[int, list[int]] = {}
        for i, melody in enumerate(melodies):
            by_length.setdefault(melody.num_steps, []).append(i)
        for indices in by_length.values():
            result[indices] = self.score_tokens(np.stack([melodies[i].tokens for i in indices]))
        return result

    def __call__(self, melody: Melody) -> float:
        """The score of one melody (remembered: a listener answering comparisons meets the same
        melodies again; score many at once with :meth:`score_batch` or :meth:`score_tokens`)."""
        tokens = np.asarray(melody.tokens if isinstance(melody, Melody) else melody, dtype=np.int64)
        key = tokens.tobytes()
        value = self._memo.get(key)
        if value is None:
            value = float(self.score_tokens(tokens[None, :])[0])
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = value
        return value

    def __repr__(self) -> str:
        return f"PanelListener({self.name}, distance={self.distance:.2f})"

    def describe(self) -> list[str]:
        """Its taste in words, one line per feature weighing at least 5%, then the interactions."""
        lines = []
        for i in np.argsort(-self.weights):
            if self.weights[i] < 0.05:
                break
            lines.append(f"{self.weights[i]:.2f} {FEATURE_NAMES[i]} {KIND_NAMES[int(self.kinds[i])]} "
                         f"{self.ideals[i]:.3g} (prior quantile {self.ideal_levels[i]:.2f}, "
                         f"tolerance {self.tolerances[i]:.3g})")
        for (*_, weight), meaning in zip(self.interactions, self.interaction_names, strict=True):
            lines.append(f"{weight:.2f} interaction: {meaning}")
        return lines


def _draw_member(index: int) -> PanelListener:
    rng = np.random.default_rng([PANEL_SEED, index])
    quantiles = reference_quantiles()
    distance = (index % _HALF + rng.uniform()) / _HALF
    weights = rng.dirichlet(np.full(NUM_FEATURES, 0.5))
    is_band = rng.random(NUM_FEATURES) < _BAND_SHARE
    sides = np.where(rng.random(NUM_FEATURES) < 0.5, -1, 1)
    kinds = np.where(is_band, BAND, sides)
    levels = 0.5 + sides * distance * rng.uniform(0.3, 1.0, NUM_FEATURES) * 0.75
    levels = levels + rng.normal(0.0, 0.05, NUM_FEATURES)
    ideals = np.array([prior_quantile_value(f, levels[f]) for f in range(NUM_FEATURES)])
    tolerances = rng.uniform(*_TOLERANCE, NUM_FEATURES) * np.array(
        [_spread(quantiles, f) for f in range(NUM_FEATURES)])
    count = int(rng.integers(2, 4))
    chosen = rng.choice(len(INTERACTIONS), size=count, replace=False)
    interactions, names = [], []
    for c in sorted(chosen.tolist()):
        name_a, kind_a, name_b, kind_b, meaning = INTERACTIONS[c]
        a, b = _INDEX[name_a], _INDEX[name_b]
        level_a = 0.5 + kind_a * distance * rng.uniform(0.0, 0.45)
        level_b = 0.5 + kind_b * distance * rng.uniform(0.0, 0.45)
        interactions.append((a, kind_a, prior_quantile_value(a, level_a), _spread(quantiles, a),
                             b, kind_b, prior_quantile_value(b, level_b), _spread(quantiles, b),
                             float(rng.uniform(*_INTERACTION_WEIGHT))))
        names.append(meaning)
    member = PanelListener(index, float(distance), weights, kinds.astype(np.int64), levels, ideals,
                           tolerances, tuple(interactions), tuple(names))
    raw = member.raw(reference_features())
    member.center, member.scale = float(raw.mean()), float(raw.std())
    return member


@lru_cache(maxsize=ORIGINAL_SIZE)
def _member(index: int) -> PanelListener:
    return _draw_member(index)


def panel_listener(k: int):
    """Panel member ``k`` (0 .. PANEL_SIZE-1), named ``panel:k``: a :class:`PanelListener` for
    0-23, a :class:`~rlcomposer.preferences.metre_panel.MetreListener` for 24-35."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < PANEL_SIZE:
        raise ListenerError(f"panel member {k!r} does not exist: give an integer 0..{PANEL_SIZE - 1}")
    if int(k) >= ORIGINAL_SIZE:
        from rlcomposer.preferences.metre_panel import metre_member

        return metre_member(int(k))
    return _member(int(k))


def panel(members: Sequence[int] = tuple(range(PANEL_SIZE))) -> list:
    """Several members (all by default; :data:`CHOOSE_MEMBERS` or :data:`REPORT_MEMBERS`)."""
    return [panel_listener(k) for k in members]


def panel_scores(tokens: np.ndarray | Sequence[Melody],
                 members: Sequence[int] = tuple(range(PANEL_SIZE))) -> np.ndarray:
    """Scores ``[N, len(members)]``: the features of members 0-23 are computed once for all of
    them; members 24-35 hear melodies in their own metre (token arrays as 4/4 in C)."""
    if isinstance(tokens, Melody):
        tokens = [tokens]
    rows = _as_tokens(tokens) if isinstance(tokens, np.ndarray) else list(tokens)
    values = bored = None
    if any(int(k) < ORIGINAL_SIZE for k in members):
        if isinstance(rows, np.ndarray):
            values, bored = _features_and_boredom(rows)
        else:  # melodies of any lengths: their features by length
            values, bored = np.zeros((len(rows), NUM_FEATURES)), np.zeros(len(rows))
            by_length: dict[int, list[int]] = {}
            for i, melody in enumerate(rows):
                by_length.setdefault(melody.num_steps, []).append(i)
            for indices in by_length.values():
                values[indices], bored[indices] = _features_and_boredom(_as_tokens([rows[i] for i in indices]))
    columns = [panel_listener(k).score_features(values, bored) if int(k) < ORIGINAL_SIZE
               else panel_listener(k).score_batch(rows) for k in members]
    return np.stack(columns, axis=1)


__all__ = [
    "CHOOSE_MEMBERS", "FEATURES", "FEATURE_NAMES", "INTERACTIONS", "METRE_MEMBERS", "ORIGINAL_MEMBERS",
    "ORIGINAL_SIZE", "PANEL_SEED", "PANEL_SIZE",
    "PanelListener", "REPORT_MEMBERS", "features", "panel", "panel_listener", "panel_scores",
    "reference_tokens", "write_reference",
]
