"""Music-theory metrics of Sequence Tutor (Jaques et al. 2017, Table 1).

The definitions follow Magenta's RL Tuner, the code behind that table:
``magenta/models/rl_tuner/rl_tuner_eval_metrics.py`` (how the statistics are
counted) and the reward helpers of ``magenta/models/rl_tuner/rl_tuner.py``
(``detect_repeating_notes``, ``reward_key``, ``reward_tonic``,
``detect_leap_up_back``, ``detect_high_unique`` / ``detect_low_unique``,
``detect_last_motif`` / ``detect_repeated_motif``) and
``rl_tuner_ops.autocorrelate``.

RL Tuner uses the same encoding as :mod:`rlcomposer.music.melody`: one token per
sixteenth note, ``NOTE_OFF`` = 0 (our ``REST``), ``NO_EVENT`` = 1 (our ``HOLD``),
token ``2 + midi - 48`` starts a note. Its rules therefore carry over step for
step; the only adaptations are

* the key and the tonic are tested by pitch class (RL Tuner lists the C-major
  tokens for MIDI 48-83 and takes middle C, token 14, as the tonic; our range
  also has C6 = 84, and our melodies are transposed by pitch class, so any C
  counts);
* a melody without any note has neither a unique highest nor a unique lowest
  note (RL Tuner's ``detect_high_unique`` would compare REST/HOLD tokens there).

Two conventions of RL Tuner matter when reading the numbers:

* **"Notes" are time steps.** RL Tuner divides the per-note counts (excessively
  repeated, not in key, in motif, in repeated motif) by ``total_notes =
  compositions x composition_length``, i.e. by the number of sixteenth-note
  *steps* (its "notes" are the network's actions, HOLD and REST included), and
  it tests every step. We do the same, so the numbers are comparable with
  Table 1; the per-step masks returned by the rule functions allow other
  denominators (``compute_music_metrics`` also reports ``num_notes``, the
  number of note onsets).
* **Held notes and rests can be "excessively repeated".** ``detect_repeating_notes``
  is applied to every action, HOLD and REST included, so the 6th and later
  sixteenth of a held note (with no rest in between) counts, as does a third
  REST token in a row. This is RL Tuner's behaviour and part of its 63.3%
  figure for the Note RNN; we keep it.

All rule functions are pure, take a :class:`~rlcomposer.music.melody.Melody` or its
token array (any 1-D integer sequence), and use only numpy, so an RL
environment can call them on a partial melody to build reward terms.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rlcomposer.music.keys import DEFAULT_KEY, Key
from rlcomposer.music.melody import HOLD, MIN_PITCH, NUM_SPECIAL_TOKENS, REST, VOCAB_SIZE, Melody

# --------------------------------------------------------------------- constants
C_MAJOR_PITCH_CLASSES: frozenset[int] = frozenset({0, 2, 4, 5, 7, 9, 11})
"""Pitch classes in C major / A minor (RL Tuner's ``C_MAJOR_KEY``, by pitch class)."""

TONIC_PITCH_CLASSES: tuple[int, ...] = (0,)
"""Default tonic for "starts with the tonic": C only.

RL Tuner's evaluation passes a single ``tonic_note`` (default ``C_MAJOR_TONIC``);
``A_MINOR_TONIC`` exists only as an alternative argument, never as a second
accepted tonic, so A is not accepted by default. Pass ``(0, 9)`` to accept both.
"""

MAX_REPEATS = 4
"""``detect_repeating_notes``: a token may follow this many equal tokens when
nothing else (no HOLD, no REST) lies in between; one more is excessive."""

MAX_REPEATS_WITH_GAPS = 6
"""As :data:`MAX_REPEATS` when HOLDs or RESTs lie between the repetitions."""

MAX_REPEATED_RESTS = 1
"""A REST may follow at most this many RESTs (HOLDs in between allowed)."""

LEAP_SEMITONES = 7
"""A leap is a move of a fifth or more between consecutive notes (RL Tuner:
``interval >= FIFTH`` or ``IN_KEY_FIFTH``); rests are skipped."""

STEPS_BETWEEN_LEAPS = 6
"""``detect_leap_up_back(steps_between_leaps=6)``: a leap back resolves an earlier
leap only if more than this many steps passed since that leap."""

LEAP_RESOLVED = 1
LEAP_DOUBLED = -1

MOTIF_WINDOW = 8
"""Steps in a motif: RL Tuner's ``bar_length=8`` (half a 4/4 bar on our grid)."""

MOTIF_MIN_DISTINCT_NOTES = 3
"""A motif has at least this many distinct pitches in its window."""

AUTOCORRELATION_LAGS: tuple[int, ...] = (1, 2, 3)

_IS_PITCH = np.arange(VOCAB_SIZE) >= NUM_SPECIAL_TOKENS
_OUT_OF_KEY = np.array(
    [
        token >= NUM_SPECIAL_TOKENS
        and (token - NUM_SPECIAL_TOKENS + MIN_PITCH) % 12 not in C_MAJOR_PITCH_CLASSES
        for token in range(VOCAB_SIZE)
    ]
)

TokensLike = Melody | np.ndarray | Sequence[int]


@functools.lru_cache(maxsize=64)
def out_of_key_table(key: Key) -> np.ndarray:
    """Per token: does it start a note outside ``key``'s scale? (bool, REST/HOLD False)."""
    scale = key.scale_pitch_classes()
    return np.array([token >= NUM_SPECIAL_TOKENS
                     and (token - NUM_SPECIAL_TOKENS + MIN_PITCH) % 12 not in scale
                     for token in range(VOCAB_SIZE)])


def melody_key(melody: TokensLike, key: Key | None = None) -> Key:
    """``key`` if given, else the melody's own (token arrays are C major)."""
    if key is not None:
        return key
    return melody.key if isinstance(melody, Melody) else DEFAULT_KEY


def _tokens(melody: TokensLike) -> np.ndarray:
    """The token array of a melody (or of something that already is one)."""
    if isinstance(melody, Melody):
        return melody.tokens
    tokens = np.asarray(melody, dtype=np.int64)
    if tokens.ndim != 1:
        raise ValueError(f"expected a 1-D token sequence, got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= VOCAB_SIZE):
        raise ValueError(f"tokens must lie in 0..{VOCAB_SIZE - 1}")
    return tokens


# ------------------------------------------------------------------ rule functions
def excessive_repeats(melody: TokensLike) -> np.ndarray:
    """Per step: is this token an excessive repetition? (bool array, one per step)

    RL Tuner's ``detect_repeating_notes``, applied to every step as
    ``add_repeating_note_stat`` does. Walking back from the step, tokens equal
    to it are counted, HOLD and REST tokens are skipped (but remembered) and any
    other note stops the walk. The step is excessive if it is a REST following
    more than :data:`MAX_REPEATED_RESTS` RESTs, or if the count exceeds
    :data:`MAX_REPEATS` (no HOLD/REST skipped) or :data:`MAX_REPEATS_WITH_GAPS`
    (some skipped). So a pitch struck 6 times in a row flags the 6th strike; a
    note held for more than 5 sixteenths flags its 6th and later HOLD steps.
    """
    tokens = _tokens(melody).tolist()
    flags = np.zeros(len(tokens), dtype=bool)
    for step, token in enumerate(tokens):
        repeated = 0
        held = breaks = False
        i = step - 1
        while i >= 0:
            previous = tokens[i]
            if previous == token:
                repeated += 1
            elif previous == REST:
                breaks = True
            elif previous == HOLD:
                held = True
            else:
                break
            i -= 1
        if token == REST and repeated > MAX_REPEATED_RESTS:
            flags[step] = True
        elif not held and not breaks:
            flags[step] = repeated > MAX_REPEATS
        else:
            flags[step] = repeated > MAX_REPEATS_WITH_GAPS
    return flags


def notes_not_in_key(melody: TokensLike, key: Key | None = None) -> np.ndarray:
    """Per step: does a note outside the key start here? (bool array)

    RL Tuner's ``reward_key`` / ``add_in_key_stat`` (which hard-codes C major),
    in the melody's own key and mode (``key``, else the melody's, else C
    major): REST and HOLD count as in key, a note is in key when its pitch class
    is in the scale (C dorian's E-flat is, its E is not).
    """
    if key is None and not isinstance(melody, Melody):
        return _OUT_OF_KEY[_tokens(melody)]
    return out_of_key_table(melody_key(melody, key))[_tokens(melody)]


def starts_with_tonic(
    melody: TokensLike, tonic_pitch_classes: Iterable[int] | None = None
) -> bool:
    """Does the very first step start a tonic note?

    RL Tuner's ``add_tonic_start_stat`` (and the beat-0 part of ``reward_tonic``):
    the action at beat 0 must be the tonic, so a melody opening with a rest does
    not count. The tonic is tested by pitch class: ``tonic_pitch_classes``, else
    the melody's own tonic (C for a token array; see :data:`TONIC_PITCH_CLASSES`).
    """
    if tonic_pitch_classes is None:
        tonic_pitch_classes = (melody_key(melody).tonic_pitch_class,)
    tokens = _tokens(melody)
    if tokens.size == 0 or tokens[0] < NUM_SPECIAL_TOKENS:
        return False
    pitch_class = (int(tokens[0]) - NUM_SPECIAL_TOKENS + MIN_PITCH) % 12
    return pitch_class in {int(pc) % 12 for pc in tonic_pitch_classes}


def leap_resolutions(
    melody: TokensLike, steps_between_leaps: int = STEPS_BETWEEN_LEAPS
) -> np.ndarray:
    """Per step: :data:`LEAP_RESOLVED` (1), :data:`LEAP_DOUBLED` (-1) or 0 (int8 array).

    RL Tuner's stateful ``detect_leap_up_back``, run over the melody. A *leap*
    is a move of :data:`LEAP_SEMITONES` (a fifth) or more from the previous note
    (rests and holds skipped). After a leap the melody is "in a leap" in that
    direction, remembering the note it leapt from. Then:

    * a non-leap note that gets back to (or beyond) the leapt-from note
      resolves it (``RESOLVED`` on that step);
    * a leap in the opposite direction ends the leap, and counts as
      ``RESOLVED`` only if more than ``steps_between_leaps`` steps passed since
      the last leap (an immediate leap back is neither resolved nor doubled);
    * a second leap in the same direction is ``DOUBLED`` (the melody stays in
      the original leap).

    So a single step back after a leap does not resolve it yet; moving on back
    to the starting note does. Leaps still open at the end are neither.
    """
    tokens = _tokens(melody).tolist()
    outcomes = np.zeros(len(tokens), dtype=np.int8)
    direction = 0
    leapt_from = 0
    steps_since_leap = 0
    previous_note: int | None = None
    for step, token in enumerate(tokens):
        if step == 0:  # RL Tuner: nothing to compare with, no step counted
            if token >= NUM_SPECIAL_TOKENS:
                previous_note = token
            continue
        if token < NUM_SPECIAL_TOKENS:
            steps_since_leap += 1
            continue
        if previous_note is not None and abs(token - previous_note) >= LEAP_SEMITONES:
            leap_direction = 1 if token > previous_note else -1
            if direction == 0:
                direction = leap_direction
                leapt_from = previous_note
            elif direction != leap_direction:
                if steps_since_leap > steps_between_leaps:
                    outcomes[step] = LEAP_RESOLVED
                direction = 0
            else:
                outcomes[step] = LEAP_DOUBLED
            steps_since_leap = 0
        else:
            steps_since_leap += 1
            if (direction == 1 and token <= leapt_from) or (
                direction == -1 and token >= leapt_from
            ):
                outcomes[step] = LEAP_RESOLVED
                direction = 0
        previous_note = token
    return outcomes


def unique_highest_note(melody: TokensLike) -> bool:
    """Is the highest pitch struck exactly once? (RL Tuner's ``detect_high_unique``)

    Counts note onsets: a long note held over many steps is struck once.
    False for a melody without notes.
    """
    tokens = _tokens(melody)
    notes = tokens[tokens >= NUM_SPECIAL_TOKENS]
    return bool(notes.size) and int(np.count_nonzero(notes == notes.max())) == 1


def unique_lowest_note(melody: TokensLike) -> bool:
    """Is the lowest pitch struck exactly once? (RL Tuner's ``detect_low_unique``)"""
    tokens = _tokens(melody)
    notes = tokens[tokens >= NUM_SPECIAL_TOKENS]
    return bool(notes.size) and int(np.count_nonzero(notes == notes.min())) == 1


def _motif_windows(tokens: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows ending at steps ``window-1 ..`` and whether each is a motif."""
    windows = sliding_window_view(tokens, window)
    pitches = np.sort(np.where(windows >= NUM_SPECIAL_TOKENS, windows, -1), axis=1)
    first = np.ones(pitches.shape, dtype=bool)
    first[:, 1:] = pitches[:, 1:] != pitches[:, :-1]
    distinct = np.count_nonzero(first & (pitches >= NUM_SPECIAL_TOKENS), axis=1)
    return windows, distinct >= MOTIF_MIN_DISTINCT_NOTES


def notes_in_motif(melody: TokensLike, window: int = MOTIF_WINDOW) -> np.ndarray:
    """Per step: does the step end a motif? (bool array)

    RL Tuner's ``detect_last_motif`` as used by ``add_motif_stat``: the last
    ``window`` steps (RL Tuner's ``bar_length=8``) up to and including this one
    hold at least :data:`MOTIF_MIN_DISTINCT_NOTES` distinct pitches. The first
    ``window - 1`` steps never qualify.
    """
    tokens = _tokens(melody)
    flags = np.zeros(tokens.size, dtype=bool)
    if tokens.size >= window:
        flags[window - 1 :] = _motif_windows(tokens, window)[1]
    return flags


def notes_in_repeated_motif(melody: TokensLike, window: int = MOTIF_WINDOW) -> np.ndarray:
    """Per step: does the step end a motif that already occurred earlier? (bool array)

    RL Tuner's ``detect_repeated_motif``: the motif ending here (see
    :func:`notes_in_motif`) appears token for token (HOLDs and RESTs included)
    entirely before its own start, so the two occurrences do not overlap.
    """
    tokens = _tokens(melody)
    flags = np.zeros(tokens.size, dtype=bool)
    if tokens.size < window:
        return flags
    windows, is_motif = _motif_windows(tokens, window)
    rows = np.ascontiguousarray(windows, dtype=np.int8)
    keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
    _, first_index, inverse = np.unique(keys, return_index=True, return_inverse=True)
    first_start = first_index[inverse.ravel()]
    starts = np.arange(len(keys))
    flags[window - 1 :] = is_motif & (first_start + window <= starts)
    return flags


def autocorrelation(melody: TokensLike, lag: int) -> float:
    """Autocorrelation coefficient of the token sequence at ``lag`` steps.

    ``rl_tuner_ops.autocorrelate``: ``sum((x[lag:]) * x[:-lag]) / n / var`` with
    ``x`` the tokens minus their mean (REST = 0 and HOLD = 1 included, as in RL
    Tuner). NaN when the sequence is constant or not longer than ``lag``.
    """
    if lag < 1:
        raise ValueError(f"lag must be a positive number of steps, got {lag}")
    tokens = _tokens(melody).astype(np.float64)
    n = tokens.size
    if n <= lag:
        return math.nan
    variance = tokens.var()
    if variance == 0.0:
        return math.nan
    x = tokens - tokens.mean()
    return float((x[lag:] * x[: n - lag]).sum() / n / variance)


# ------------------------------------------------------------------- aggregation
@dataclass(frozen=True)
class MusicMetrics:
    """Sequence Tutor's Table 1 metrics over a set of melodies (fractions 0..1).

    Per-step shares divide by :attr:`num_steps` (RL Tuner's ``total_notes``);
    per-melody shares by :attr:`num_melodies`. NaN where a share has no
    denominator (no leaps, only constant melodies for autocorrelation).
    """

    excessively_repeated: float
    """Share of steps flagged by :func:`excessive_repeats`."""
    not_in_key: float
    """Share of steps starting a note outside the melody's key (:func:`notes_not_in_key`)."""
    starts_with_tonic: float
    """Share of melodies whose first step is the tonic (:func:`starts_with_tonic`)."""
    leaps_resolved: float
    """Resolved leaps / (resolved + doubled leaps) (:func:`leap_resolutions`)."""
    unique_max: float
    """Share of melodies whose highest pitch is struck once (:func:`unique_highest_note`)."""
    unique_min: float
    """Share of melodies whose lowest pitch is struck once (:func:`unique_lowest_note`)."""
    in_motif: float
    """Share of steps ending a motif (:func:`notes_in_motif`)."""
    in_repeated_motif: float
    """Share of steps ending a repeated motif (:func:`notes_in_repeated_motif`)."""
    autocorrelation_1: float
    """Mean over melodies of the lag-1 :func:`autocorrelation` (NaNs skipped)."""
    autocorrelation_2: float
    """Mean over melodies of the lag-2 :func:`autocorrelation` (NaNs skipped)."""
    autocorrelation_3: float
    """Mean over melodies of the lag-3 :func:`autocorrelation` (NaNs skipped)."""
    num_melodies: int
    """Number of melodies measured."""
    num_steps: int
    """Total sixteenth-note steps: the denominator of the per-step shares."""
    num_notes: int
    """Total note onsets (pitch tokens)."""
    num_leaps: int
    """Resolved plus doubled leaps: the denominator of :attr:`leaps_resolved`."""

    def as_dict(self) -> dict[str, float]:
        """Every field (metrics first, then counts) as a float."""
        return {name: float(value) for name, value in asdict(self).items()}


METRIC_LABELS: dict[str, str] = {
    "excessively_repeated": "Notes excessively repeated",
    "not_in_key": "Notes not in key",
    "starts_with_tonic": "Melodies starting with tonic",
    "leaps_resolved": "Leaps resolved",
    "unique_max": "Melodies with unique max note",
    "unique_min": "Melodies with unique min note",
    "in_motif": "Notes in motif",
    "in_repeated_motif": "Notes in repeated motif",
    "autocorrelation_1": "Mean autocorrelation, lag 1",
    "autocorrelation_2": "Mean autocorrelation, lag 2",
    "autocorrelation_3": "Mean autocorrelation, lag 3",
}
"""Table rows in Table 1 order: field name -> row label."""

AUTOCORRELATION_FIELDS = ("autocorrelation_1", "autocorrelation_2", "autocorrelation_3")


def _share(count: int, total: int) -> float:
    return count / total if total else math.nan


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def compute_music_metrics(
    melodies: Iterable[Melody],
    *,
    tonic_pitch_classes: Iterable[int] | None = None,
    motif_window: int | None = None,
) -> MusicMetrics:
    """The Table 1 metrics of a set of melodies (RL Tuner's ``compute_composition_stats``).

    Counts are summed over all melodies before dividing, as RL Tuner does
    (longer melodies weigh more in the per-step shares). "In key" and "starts
    with the tonic" are judged in each melody's own key and mode (unless
    ``tonic_pitch_classes`` is given); a motif's window is half a bar of each
    melody's own metre (``motif_window`` overrides it; :data:`MOTIF_WINDOW`, half
    a 4/4 bar, for token arrays). Raises ``ValueError`` for an empty set.
    """
    melodies = list(melodies)
    if not melodies:
        raise ValueError("compute_music_metrics needs at least one melody, got none")
    tonics = tuple(tonic_pitch_classes) if tonic_pitch_classes is not None else None
    steps = notes = repeated = out_of_key = tonic = resolved = doubled = 0
    high = low = motif = repeated_motif = 0
    autocorrelations: dict[int, list[float]] = {lag: [] for lag in AUTOCORRELATION_LAGS}
    for melody in melodies:
        tokens = _tokens(melody)
        steps += tokens.size
        notes += int(np.count_nonzero(_IS_PITCH[tokens]))
        repeated += int(np.count_nonzero(excessive_repeats(tokens)))
        key = melody_key(melody)
        out_of_key += int(np.count_nonzero(notes_not_in_key(tokens, key)))
        tonic += starts_with_tonic(tokens, tonics if tonics is not None else (key.tonic_pitch_class,))
        leaps = leap_resolutions(tokens)
        resolved += int(np.count_nonzero(leaps == LEAP_RESOLVED))
        doubled += int(np.count_nonzero(leaps == LEAP_DOUBLED))
        high += unique_highest_note(tokens)
        low += unique_lowest_note(tokens)
        window = motif_window or (max(melody.metre.steps_per_bar // 2, 1) if isinstance(melody, Melody)
                                  else MOTIF_WINDOW)
        motif += int(np.count_nonzero(notes_in_motif(tokens, window)))
        repeated_motif += int(np.count_nonzero(notes_in_repeated_motif(tokens, window)))
        for lag, values in autocorrelations.items():
            values.append(autocorrelation(tokens, lag))
    count = len(melodies)
    return MusicMetrics(
        excessively_repeated=_share(repeated, steps),
        not_in_key=_share(out_of_key, steps),
        starts_with_tonic=_share(tonic, count),
        leaps_resolved=_share(resolved, resolved + doubled),
        unique_max=_share(high, count),
        unique_min=_share(low, count),
        in_motif=_share(motif, steps),
        in_repeated_motif=_share(repeated_motif, steps),
        autocorrelation_1=_nanmean(autocorrelations[1]),
        autocorrelation_2=_nanmean(autocorrelations[2]),
        autocorrelation_3=_nanmean(autocorrelations[3]),
        num_melodies=count,
        num_steps=steps,
        num_notes=notes,
        num_leaps=resolved + doubled,
    )


def _format_value(name: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if name in AUTOCORRELATION_FIELDS:
        return f"{value:.3f}"
    return f"{100.0 * value:.1f}%"


def format_metrics_table(
    columns: Mapping[str, MusicMetrics],
    extra_rows: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A plain-text table: one row per metric, one column per model.

    Shares are percentages with one decimal, autocorrelations have three
    decimals, missing values read ``n/a``; a "Melodies" row gives the number of
    melodies behind each column. ``extra_rows`` (label -> one formatted cell per
    column) are appended at the end, e.g. a likelihood under the prior.
    """
    if not columns:
        raise ValueError("format_metrics_table needs at least one column of metrics")
    rows: list[tuple[str, list[str]]] = [("Metric", list(columns))]
    for name, label in METRIC_LABELS.items():
        rows.append((label, [_format_value(name, getattr(m, name)) for m in columns.values()]))
    rows.append(("Melodies", [str(m.num_melodies) for m in columns.values()]))
    for label, cells in (extra_rows or {}).items():
        if len(cells) != len(columns):
            raise ValueError(
                f"extra row {label!r} has {len(cells)} cells for {len(columns)} columns"
            )
        rows.append((label, [str(cell) for cell in cells]))
    label_width = max(len(label) for label, _ in rows)
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(columns))]
    lines = []
    for index, (label, cells) in enumerate(rows):
        line = label.ljust(label_width) + "".join(
            "  " + cell.rjust(width) for cell, width in zip(cells, widths, strict=True)
        )
        lines.append(line.rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines) + "\n"


__all__ = [
    "AUTOCORRELATION_LAGS",
    "C_MAJOR_PITCH_CLASSES",
    "LEAP_DOUBLED",
    "LEAP_RESOLVED",
    "METRIC_LABELS",
    "MOTIF_WINDOW",
    "MusicMetrics",
    "TONIC_PITCH_CLASSES",
    "autocorrelation",
    "compute_music_metrics",
    "excessive_repeats",
    "format_metrics_table",
    "leap_resolutions",
    "notes_in_motif",
    "notes_in_repeated_motif",
    "notes_not_in_key",
    "starts_with_tonic",
    "unique_highest_note",
    "unique_lowest_note",
]
