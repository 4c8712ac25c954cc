"""Panel members who hear the metre: ``panel:24`` .. ``panel:35``.

Members 0-23 (:mod:`rlcomposer.preferences.panel`) read every melody as 4/4 in C
from step 0, whatever its metre: that is their fixed meaning, and they keep it.
The members here hear each melody in its own metre, key and pick-up: where its
beats and bar lines fall (:attr:`~rlcomposer.music.melody.Melody.metric_offset`,
:attr:`~rlcomposer.music.metre.Metre.beat_steps`, ``steps_per_bar``), which notes
are chord tones of its key, and what figure each beat is divided into. A token
array is a melody of 4/4 in C major without a pick-up.

1. **Features** (:data:`METRE_FEATURES`, 13 numbers, written here and nowhere
   else: not shared with the reward model's descriptors): notes struck on the
   beats and on the downbeats; the share of whole beats divided as the metre's
   *lilt* (compound: a quarter then an eighth, the jig's long-short; simple: a
   dotted eighth then a sixteenth), evenly (three eighths; two eighths) or not at
   all (one note on the beat); syncopation against the real beat (a note starting
   off the beat and sounding across the next one, or off the beat's division,
   the eighths, and sounding across the next division); notes off the beat; the
   downbeat's agogic accent (how much longer downbeat notes are than the others,
   log2: a waltz's long first beat); chord tones (the key's tonic triad) on the
   downbeats and on the beats; bars (after the pick-up) whose rhythm repeats an
   earlier bar's; where the last note falls (downbeat 1, beat 0.5); notes exactly
   a beat long that start on the beat.
2. **The prior's distribution, per metre family.** A feature means something
   else in 6/8 than in 4/4, so quantiles come from the shipped prior's melodies
   of the melody's own family (``duple``: the panel's 4/4 reference set;
   ``triple``: 2000 melodies of 3/4; ``compound``: 2000 of 6/8; all 4 bars, C
   major, in ``rlcomposer/data/panel_reference.json``; see
   :func:`write_family_references`).
3. **Member k** (``j = k - 24``) draws, from ``np.random.default_rng([PANEL_SEED, k])``:
   a distance ``d = (j // 2 + u) / 6`` (members ``2i`` and ``2i + 1``, one in
   each half, share a distance stratum); Dirichlet(0.7) weights; per feature a
   kind (band with probability 0.5, else at least / at most), an ideal level
   ``0.5 ± d · U(0.3, 1) · 0.75 + N(0, 0.05)`` and a tolerance factor
   ``U(0.25, 0.75)``; two interactions of :data:`METRE_INTERACTIONS`. Every member
   also has a *signature*, by ``(j // 2) % 3`` (so each half has every signature
   twice): it likes the lilt on the beat (jig), likes the downbeat's agogic
   accent (waltz), or dislikes syncopation against the real beat; the signature
   takes 40% of the weight, as a threshold at the level
   ``0.5 ± (0.15 + 0.35 d)``.
4. **Score.** As the panel's (satisfactions, interactions), in the melody's
   family: ideals are that family's quantiles at the member's levels, tolerances
   its factor times that family's 10-90% spread, and the raw taste is
   standardised on the family's reference melodies; minus
   :func:`~rlcomposer.preferences.boredom.boredom`.

**The split**: even ``j`` (24, 26, ..., 34) choose, odd ``j`` (25, 27, ..., 35) report,
added to the halves of :mod:`~rlcomposer.preferences.panel`.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from rlcomposer.music.keys import DEFAULT_KEY, MODE_INTERVALS, Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.metre import DEFAULT_METRE, FAMILIES, Metre, parse_metre
from rlcomposer.music.notes import note_grid
from rlcomposer.preferences.boredom import boredom_of_grid
from rlcomposer.preferences.listener_errors import ListenerError
from rlcomposer.preferences.panel_reference import (
    PANEL_SEED,
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

FIRST_METRE_MEMBER = 24
METRE_MEMBER_COUNT = 12
METRE_MEMBERS: tuple[int, ...] = tuple(range(FIRST_METRE_MEMBER, FIRST_METRE_MEMBER + METRE_MEMBER_COUNT))
METRE_CHOOSE_MEMBERS: tuple[int, ...] = METRE_MEMBERS[0::2]
"""Metre-hearing members that may be used to choose (24, 26, ..., 34)."""
METRE_REPORT_MEMBERS: tuple[int, ...] = METRE_MEMBERS[1::2]
"""Metre-hearing members used only to report (25, 27, ..., 35)."""

FAMILY_METRES = {"duple": "4/4", "triple": "3/4", "compound": "6/8"}
"""The metre whose prior melodies stand for each family in the reference."""
FAMILY_REFERENCE_STEPS = 48
"""Length of the triple and compound reference melodies (4 bars of 3/4 or 6/8)."""


@dataclass(frozen=True)
class MetreFeature:
    name: str
    description: str
    low: float
    high: float
    floor: float  # the smallest tolerance scale


METRE_FEATURES: tuple[MetreFeature, ...] = (
    MetreFeature("beat_onsets", "share of the beats that strike a note", 0, 1, 0.05),
    MetreFeature("downbeat_onsets", "share of the bar downbeats that strike a note", 0, 1, 0.05),
    MetreFeature("lilt", "share of whole beats divided long-short (compound: quarter + eighth; simple: dotted "
                 "eighth + sixteenth)", 0, 1, 0.03),
    MetreFeature("even_beats", "share of whole beats divided evenly (three eighths; two eighths)", 0, 1, 0.03),
    MetreFeature("whole_beats", "share of whole beats with one note, struck on the beat", 0, 1, 0.03),
    MetreFeature("syncopation", "share of notes sounding across a stronger position than their start: off the "
                 "beat across the next beat, or off the beat's division (eighths) across the next division", 0, 1,
                 0.03),
    MetreFeature("offbeat_onsets", "share of notes starting off the beat", 0, 1, 0.03),
    MetreFeature("downbeat_accent", "mean log2 length of downbeat notes minus that of all notes", -4, 4, 0.1),
    MetreFeature("downbeat_chord", "share of downbeat notes on the key's tonic triad (0.5 without)", 0, 1, 0.05),
    MetreFeature("beat_chord", "share of notes struck on a beat that are on the tonic triad (0.5 without)", 0, 1,
                 0.05),
    MetreFeature("bar_rhythm_repetition", "share of whole bars after the first whose onsets repeat an earlier "
                 "bar's", 0, 1, 0.1),
    MetreFeature("final_downbeat", "the last note starts on a downbeat (1), on a beat (0.5), else 0", 0, 1, 0.25),
    MetreFeature("beat_notes", "share of notes one beat long that start on the beat", 0, 1, 0.03),
)
METRE_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in METRE_FEATURES)
NUM_METRE_FEATURES = len(METRE_FEATURES)
_INDEX = {name: i for i, name in enumerate(METRE_FEATURE_NAMES)}


SIGNATURES: tuple[tuple[str, int, str], ...] = (
    ("lilt", AT_LEAST, "likes the metre's long-short lilt on the beat (a jig's quarter + eighth in 6/8)"),
    ("downbeat_accent", AT_LEAST, "likes a lengthened, stressed downbeat (a waltz's first beat in 3/4)"),
    ("syncopation", AT_MOST, "dislikes syncopation against the real beat"),
)
"""Each member's signature taste, by ``(j // 2) % 3``."""

METRE_INTERACTIONS: tuple[tuple[str, int, str, int, str], ...] = (
    ("lilt", AT_LEAST, "downbeat_chord", AT_LEAST, "a lilting beat with chord tones on the downbeat"),
    ("downbeat_accent", AT_LEAST, "downbeat_onsets", AT_LEAST, "struck, lengthened downbeats"),
    ("syncopation", AT_MOST, "offbeat_onsets", AT_LEAST, "off-beat notes that do not cross the beat"),
    ("even_beats", AT_LEAST, "bar_rhythm_repetition", AT_LEAST, "running beats in repeated bar rhythms"),
    ("beat_notes", AT_LEAST, "final_downbeat", AT_LEAST, "beat-long notes and an ending on the downbeat"),
    ("lilt", AT_LEAST, "syncopation", AT_MOST, "the lilt without syncopation"),
)
"""Pairs a member may reward together: (feature, kind, feature, kind, meaning)."""


# ------------------------------------------------------------------ features
def _triad(key: Key) -> np.ndarray:
    intervals = MODE_INTERVALS[key.mode]
    mask = np.zeros(12, dtype=bool)
    mask[[(key.tonic_pitch_class + intervals[i]) % 12 for i in (0, 2, 4)]] = True
    return mask


def _figure(metre: Metre, kind: str) -> int:
    """A beat's onset pattern as bits (bit ``i``: a note starts ``i`` steps into the beat); -1: none."""
    beat = metre.beat_steps
    if kind == "whole":
        return 1
    if metre.is_compound:
        if beat % 3:
            return -1
        third = beat // 3
        return 1 | (1 << (2 * third)) if kind == "lilt" else 1 | (1 << third) | (1 << (2 * third))
    if kind == "lilt":
        return 1 | (1 << (3 * beat // 4)) if beat % 4 == 0 else -1
    return 1 | (1 << (beat // 2)) if beat % 2 == 0 else -1




def _pack_rows(pattern: np.ndarray) -> np.ndarray:
    """``[N, R, W]`` bools -> ``[N, R]`` integers (W at most 62)."""
    return (pattern.astype(np.int64) << np.arange(pattern.shape[-1], dtype=np.int64)).sum(axis=-1)


def _features_of_group(tokens: np.ndarray, metre: Metre, pickup_steps: int, key: Key
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Metre features ``[N, F]`` and boredom ``[N]`` of ``[N, T]`` token rows of one shape."""
    grid = note_grid(tokens)
    pitch, onset, duration, valid, count = grid.pitch, grid.onset, grid.duration, grid.valid, grid.count
    num, steps = tokens.shape
    bar, beat = metre.steps_per_bar, metre.beat_steps
    offset = (bar - pickup_steps) % bar
    out = np.zeros((num, NUM_METRE_FEATURES))
    f = _INDEX
    position = onset + offset
    in_beat, in_bar = position % beat, position % bar
    on_beat, on_down = valid & (in_beat == 0), valid & (in_bar == 0)
    onset_steps = np.zeros((num, steps), dtype=bool)
    onset_steps[np.nonzero(valid)[0], onset[valid]] = True
    metric = np.arange(steps) + offset
    beat_starts, down_starts = metric % beat == 0, metric % bar == 0
    out[:, f["beat_onsets"]] = onset_steps[:, beat_starts].mean(axis=1) if beat_starts.any() else 0.0
    out[:, f["downbeat_onsets"]] = onset_steps[:, down_starts].mean(axis=1) if down_starts.any() else 0.0
    first = (-offset) % beat
    whole = max((steps - first) // beat, 0)
    if whole:
        packed = _pack_rows(onset_steps[:, first:first + whole * beat].reshape(num, whole, beat))
        for name, kind in (("lilt", "lilt"), ("even_beats", "even"), ("whole_beats", "whole")):
            out[:, f[name]] = (packed == _figure(metre, kind)).mean(axis=1)
    division = beat // 3 if metre.is_compound and beat % 3 == 0 else max(beat // 2, 1)
    in_division = position % division
    across_beat = (in_beat != 0) & (in_beat + duration > beat)
    across_division = (in_division != 0) & (in_division + duration > division)
    out[:, f["syncopation"]] = share((valid & (across_beat | across_division)).sum(axis=1), count, 0.0)
    out[:, f["offbeat_onsets"]] = share((valid & (in_beat != 0)).sum(axis=1), count, 0.0)
    log_length = np.log2(np.maximum(duration, 1))
    mean_all = share(np.where(valid, log_length, 0.0).sum(axis=1), count, 0.0)
    n_down = on_down.sum(axis=1)
    mean_down = share(np.where(on_down, log_length, 0.0).sum(axis=1), n_down, 0.0)
    out[:, f["downbeat_accent"]] = np.where(n_down > 0, mean_down - mean_all, 0.0)
    chord = _triad(key)[pitch % 12]
    out[:, f["downbeat_chord"]] = share((on_down & chord).sum(axis=1), n_down, 0.5)
    out[:, f["beat_chord"]] = share((on_beat & chord).sum(axis=1), on_beat.sum(axis=1), 0.5)
    first_bar = (-offset) % bar
    bars = max((steps - first_bar) // bar, 0)
    if bars >= 2:
        rows = onset_steps[:, first_bar:first_bar + bars * bar].reshape(num, bars, bar)
        words = np.stack([_pack_rows(rows[:, :, s:s + 31]) for s in range(0, bar, 31)], axis=-1)
        equal = (words[:, :, None, :] == words[:, None, :, :]).all(axis=-1)
        earlier = np.triu(np.ones((bars, bars), dtype=bool), 1)  # [i, j]: bar i before bar j
        out[:, f["bar_rhythm_repetition"]] = (equal & earlier[None]).any(axis=1)[:, 1:].mean(axis=1)
    rows_index = np.arange(num)
    last = np.maximum(count - 1, 0)
    last_down, last_beat = on_down[rows_index, last], on_beat[rows_index, last]
    out[:, f["final_downbeat"]] = np.where(count > 0, np.where(last_down, 1.0, np.where(last_beat, 0.5, 0.0)), 0.0)
    out[:, f["beat_notes"]] = share((on_beat & (duration == beat)).sum(axis=1), count, 0.0)
    return out, boredom_of_grid(grid)


def _shape_of(melody: Melody | np.ndarray) -> tuple[int, Metre, int, Key]:
    if isinstance(melody, Melody):
        return melody.num_steps, melody.metre, melody.pickup_steps, melody.key
    return int(np.asarray(melody).shape[-1]), DEFAULT_METRE, 0, DEFAULT_KEY


def _groups(melodies: Sequence[Melody | np.ndarray]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, melody in enumerate(melodies):
        groups.setdefault(_shape_of(melody), []).append(i)
    return groups


def _as_melodies(melodies) -> list[Melody | np.ndarray]:
    if isinstance(melodies, Melody):
        return [melodies]
    if isinstance(melodies, np.ndarray):
        array = np.asarray(melodies, dtype=np.int64)
        return list(array[None, :] if array.ndim == 1 else array)
    return list(melodies)


def metre_features_and_boredom(melodies) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features ``[N, F]``, boredom ``[N]`` and each melody's metre family, for melodies (any
    shapes; grouped by length, metre, pick-up and key) or token arrays (4/4 in C)."""
    melodies = _as_melodies(melodies)
    values = np.zeros((len(melodies), NUM_METRE_FEATURES))
    bored = np.zeros(len(melodies))
    families = [""] * len(melodies)
    for (_steps, metre, pickup, key), indices in _groups(melodies).items():
        tokens = np.stack([np.asarray(melodies[i].tokens if isinstance(melodies[i], Melody) else melodies[i],
                                      dtype=np.int64) for i in indices])
        values[indices], bored[indices] = _features_of_group(tokens, metre, pickup, key)
        for i in indices:
            families[i] = metre.family
    return values, bored, families


def metre_features(melodies) -> np.ndarray:
    """:data:`METRE_FEATURES` of melodies (each in its own metre, key and pick-up), ``[N, F]``."""
    return metre_features_and_boredom(melodies)[0]


# ------------------------------------------------------------ the reference
def _reference_path() -> Path:
    return REFERENCE_PATH


@lru_cache(maxsize=len(FAMILIES))
def family_reference(family: str) -> tuple[Melody, ...]:
    """The reference prior melodies of a metre family (``duple`` is the panel's 4/4 set)."""
    if family == "duple":
        return tuple(Melody(row) for row in reference_tokens())
    path = _reference_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["families"][family]
        shape = (int(data["num_melodies"]), int(data["num_steps"]))
        raw = zlib.decompress(base64.b64decode(data["tokens_zlib_base64"]))
        tokens = np.frombuffer(raw, dtype=np.uint8).reshape(shape).astype(np.int64)
        metre = parse_metre(data["metre"])
    except (OSError, ValueError, KeyError, TypeError, zlib.error) as error:
        raise ListenerError(f"panel reference {path.name} has no readable {family} melodies ({error}): "
                            "write them with rlcomposer.preferences.metre_panel.write_family_references()") from None
    return tuple(Melody(row, metre=metre) for row in tokens)


@lru_cache(maxsize=len(FAMILIES))
def family_features(family: str) -> np.ndarray:
    values = metre_features(list(family_reference(family)))
    values.setflags(write=False)
    return values




@lru_cache(maxsize=len(FAMILIES))
def family_quantiles(family: str) -> np.ndarray:
    values = np.quantile(family_features(family), QUANTILE_LEVELS, axis=0).T
    values.setflags(write=False)
    return values


def _spread(family: str, feature: int) -> float:
    return quantile_spread(family_quantiles(family)[feature], METRE_FEATURES[feature].floor)


def _quantile_value(family: str, feature: int, level: float) -> float:
    """The family's quantile of a feature, extended linearly beyond [0.02, 0.98], clipped to bounds."""
    spec = METRE_FEATURES[feature]
    return extended_quantile(family_quantiles(family)[feature], level, spec.floor, spec.low, spec.high)


def write_family_references(path: str | Path | None = None, num_melodies: int = 2000,
                            num_steps: int = FAMILY_REFERENCE_STEPS, seed: int | None = None,
                            model: str = "prior") -> Path:
    """Add (or replace) the triple and compound reference melodies in the panel's reference file,
    leaving its 4/4 melodies (members 0-23's reference) as they are.

    ``python -c "from rlcomposer.preferences.metre_panel import write_family_references;
    write_family_references()"`` writes them from the shipped prior (C major, 4 bars each).
    Doing so changes members 24-35: do it only on purpose.
    """
    from rlcomposer.prior.model import MelodyCondition
    from rlcomposer.prior.registry import resolve_model

    path = Path(path) if path is not None else _reference_path()
    seed = REFERENCE_SEED if seed is None else seed
    data = json.loads(path.read_text(encoding="utf-8"))
    prior = resolve_model(model)
    families = {}
    for index, family in enumerate(("triple", "compound")):
        metre = FAMILY_METRES[family]
        melodies = prior.sample(num_melodies, num_steps, np.random.default_rng([seed, index]),
                                condition=MelodyCondition(metre, "major"))
        tokens = np.stack([m.tokens for m in melodies]).astype(np.uint8)
        families[family] = {
            "metre": metre, "mode": "major", "model": model, "seed": [seed, index],
            "num_melodies": num_melodies, "num_steps": num_steps,
            "tokens_zlib_base64": base64.b64encode(zlib.compress(tokens.tobytes(), 9)).decode("ascii"),
        }
    data["families"] = families
    data["families_description"] = ("tokens of prior melodies of 3/4 and 6/8 (C major, 4 bars): the metre-hearing "
                                     "members' reference for the triple and compound families")
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    for cached in (family_reference, family_features, family_quantiles, _family_calibration):
        cached.cache_clear()
    return path


# ------------------------------------------------------------------- members


@dataclass(frozen=True)
class _Calibrated:
    """A member's taste in one metre family: ideals, tolerances, interactions, scaling."""

    ideals: np.ndarray
    tolerances: np.ndarray
    interactions: tuple[tuple[int, int, float, float, int, int, float, float, float], ...]
    center: float
    scale: float


@lru_cache(maxsize=METRE_MEMBER_COUNT * len(FAMILIES))
def _family_calibration(index: int, family: str) -> _Calibrated:
    member = metre_member(index)
    ideals = np.array([_quantile_value(family, i, member.ideal_levels[i]) for i in range(NUM_METRE_FEATURES)])
    tolerances = member.tolerance_factors * np.array([_spread(family, i) for i in range(NUM_METRE_FEATURES)])
    interactions = tuple(
        (a, kind_a, _quantile_value(family, a, level_a), _spread(family, a),
         b, kind_b, _quantile_value(family, b, level_b), _spread(family, b), weight)
        for a, kind_a, level_a, b, kind_b, level_b, weight in member.interaction_levels)
    uncentred = _Calibrated(ideals, tolerances, interactions, 0.0, 1.0)
    raw = _raw(member.weights, member.kinds, uncentred, family_features(family))
    return _Calibrated(ideals, tolerances, interactions, float(raw.mean()), float(raw.std()))


def _raw(weights, kinds, calibrated: _Calibrated, values: np.ndarray) -> np.ndarray:
    total = satisfaction(values, kinds, calibrated.ideals, calibrated.tolerances) @ weights
    for a, kind_a, threshold_a, tolerance_a, b, kind_b, threshold_b, tolerance_b, weight in calibrated.interactions:
        total = total + weight * (satisfaction(values[:, a], np.asarray(kind_a), threshold_a, tolerance_a)
                                  * satisfaction(values[:, b], np.asarray(kind_b), threshold_b, tolerance_b))
    return total


_MEMO_SIZE = 1 << 16


@dataclass(eq=False)
class MetreListener:
    """Metre-hearing panel member ``index`` (24..35): a listener ``Melody -> float`` (picklable).

    Scores have mean 0 and standard deviation 1 on the reference prior melodies of the
    melody's metre family, before boredom is subtracted.
    """

    index: int
    recipe_distance: float
    weights: np.ndarray  # [NUM_METRE_FEATURES], sums to 1
    kinds: np.ndarray  # BAND, AT_LEAST or AT_MOST
    ideal_levels: np.ndarray  # the prior quantile (in the melody's family) of each ideal / threshold
    tolerance_factors: np.ndarray  # times the family's 10-90% spread
    interaction_levels: tuple[tuple[int, int, float, int, int, float, float], ...]
    """(feature a, kind a, level a, feature b, kind b, level b, weight)."""
    interaction_names: tuple[str, ...]
    signature: str
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"panel:{self.index}"
        self.__name__ = self.name
        self._memo: dict[tuple, float] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_memo"] = {}
        return state

    def calibration(self, family: str) -> _Calibrated:
        if family not in FAMILIES:
            raise ListenerError(f"unknown metre family {family!r}: one of {', '.join(FAMILIES)}")
        return _family_calibration(self.index, family)

    @property
    def distance(self) -> float:
        """How far its ideals sit from the prior's medians, as :func:`~rlcomposer.preferences.panel.ideal_distance`
        (0 at the medians, 1 at the extremes), averaged over the three families."""
        result = []
        for family in FAMILIES:
            reference = family_features(family)
            ideals = self.calibration(family).ideals
            rank = (reference < ideals).mean(axis=0) + 0.5 * (reference == ideals).mean(axis=0)
            result.append(float(np.sum(self.weights * 2.0 * np.abs(rank - 0.5))))
        return float(np.mean(result))

    def score_features(self, values: np.ndarray, family: str, bored: np.ndarray | None = None) -> np.ndarray:
        calibrated = self.calibration(family)
        scores = (_raw(self.weights, self.kinds, calibrated, values) - calibrated.center) / calibrated.scale
        return scores if bored is None else scores - bored

    def score_batch(self, melodies: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """Scores of melodies of any shapes (each heard in its own metre, key and pick-up)."""
        melodies = _as_melodies(melodies)
        values, bored, families = metre_features_and_boredom(melodies)
        result = np.empty(len(melodies))
        for family in set(families):
            rows = [i for i, f in enumerate(families) if f == family]
            result[rows] = self.score_features(values[rows], family, bored[rows])
        return result

    def score_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Scores ``[N]`` of token arrays ``[N, T]`` (heard as 4/4 in C)."""
        return self.score_batch(np.asarray(tokens, dtype=np.int64))

    def __call__(self, melody: Melody) -> float:
        steps, metre, pickup, key = _shape_of(melody)
        tokens = np.asarray(melody.tokens if isinstance(melody, Melody) else melody, dtype=np.int64)
        memo_key = (tokens.tobytes(), metre, pickup, key)
        value = self._memo.get(memo_key)
        if value is None:
            value = float(self.score_batch([melody])[0])
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[memo_key] = value
        return value

    def __repr__(self) -> str:
        return f"MetreListener({self.name}, {self.signature})"

    def describe(self, family: str = "compound") -> list[str]:
        """Its taste in words, in ``family``: the signature, each feature weighing at least 5%,
        then the interactions."""
        calibrated = self.calibration(family)
        lines = [f"signature: {self.signature}"]
        for i in np.argsort(-self.weights):
            if self.weights[i] < 0.05:
                break
            lines.append(f"{self.weights[i]:.2f} {METRE_FEATURE_NAMES[i]} {KIND_NAMES[int(self.kinds[i])]} "
                         f"{calibrated.ideals[i]:.3g} in {family} (prior quantile {self.ideal_levels[i]:.2f}, "
                         f"tolerance {calibrated.tolerances[i]:.3g})")
        for (*_, weight), meaning in zip(self.interaction_levels, self.interaction_names, strict=True):
            lines.append(f"{weight:.2f} interaction: {meaning}")
        return lines


def _draw_member(index: int) -> MetreListener:
    j = index - FIRST_METRE_MEMBER
    strata = METRE_MEMBER_COUNT // 2
    rng = np.random.default_rng([PANEL_SEED, index])
    distance = (j // 2 + rng.uniform()) / strata
    weights = rng.dirichlet(np.full(NUM_METRE_FEATURES, 0.7))
    is_band = rng.random(NUM_METRE_FEATURES) < 0.5
    sides = np.where(rng.random(NUM_METRE_FEATURES) < 0.5, -1, 1)
    kinds = np.where(is_band, BAND, sides)
    levels = 0.5 + sides * distance * rng.uniform(0.3, 1.0, NUM_METRE_FEATURES) * 0.75
    levels = levels + rng.normal(0.0, 0.05, NUM_METRE_FEATURES)
    factors = rng.uniform(0.25, 0.75, NUM_METRE_FEATURES)
    chosen = rng.choice(len(METRE_INTERACTIONS), size=2, replace=False)
    interactions, names = [], []
    for c in sorted(chosen.tolist()):
        name_a, kind_a, name_b, kind_b, meaning = METRE_INTERACTIONS[c]
        interactions.append((_INDEX[name_a], kind_a, 0.5 + kind_a * distance * float(rng.uniform(0.0, 0.45)),
                             _INDEX[name_b], kind_b, 0.5 + kind_b * distance * float(rng.uniform(0.0, 0.45)),
                             float(rng.uniform(0.2, 0.4))))
        names.append(meaning)
    feature, kind, meaning = SIGNATURES[(j // 2) % len(SIGNATURES)]
    signature = _INDEX[feature]
    weights = 0.6 * weights
    weights[signature] += 0.4
    kinds[signature] = kind
    levels[signature] = 0.5 + kind * (0.15 + 0.35 * distance)
    return MetreListener(index, float(distance), weights, kinds.astype(np.int64), levels, factors,
                         tuple(interactions), tuple(names), meaning)


@lru_cache(maxsize=METRE_MEMBER_COUNT)
def metre_member(index: int) -> MetreListener:
    """Metre-hearing member ``index`` (24..35)."""
    if index not in METRE_MEMBERS:
        raise ListenerError(f"panel member {index!r} is not a metre-hearing member "
                            f"({METRE_MEMBERS[0]}..{METRE_MEMBERS[-1]})")
    return _draw_member(index)


def is_metre_member(index: int) -> bool:
    return index in METRE_MEMBERS


__all__ = [
    "FIRST_METRE_MEMBER", "METRE_CHOOSE_MEMBERS", "METRE_FEATURES", "METRE_FEATURE_NAMES", "METRE_INTERACTIONS",
    "METRE_MEMBERS", "METRE_REPORT_MEMBERS", "MetreListener", "SIGNATURES", "family_reference", "is_metre_member",
    "metre_features", "metre_member", "write_family_references",
]
