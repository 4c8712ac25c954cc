"""Interpretable musical descriptors of a melody, for the reward model.

A frozen GRU summary of a melody (its mean and last hidden state) sees local
note-to-note patterns well but global shape poorly. These descriptors say that
shape in numbers: range and register, intervals (steps, leaps, how leaps are
resolved, contour changes), rhythm (note lengths and their variety, rests,
syncopation, density), key (share of notes in C major / A minor, fit to the best
major key, ending and starting on the tonic, a long final note), climax (where
the highest note falls, whether it is struck once) and repetition (repeated-pitch
runs, distinct pitches, bars whose rhythm or interval pattern recurs).

They are written here for the reward model alone, from the tokens, so a
simulated listener's own features are never copied into what the model learns.

:func:`describe` gives ``[N, len(DESCRIPTOR_NAMES)]`` raw values (finite for
any melody, even one without notes); :func:`standardise` z-scores them with
statistics measured on reference melodies (prior samples), clipped to ±5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlcomposer.music.melody import MIN_PITCH, NUM_SPECIAL_TOKENS, REST, STEPS_PER_BAR, Melody

DESCRIPTOR_NAMES = (
    "range",  # highest - lowest pitch, octaves
    "register",  # mean pitch, octaves above C4
    "pitch_spread",  # std of pitches, octaves
    "mean_interval",  # mean |interval|, in fifths (semitones / 7)
    "largest_interval",  # semitones / 12
    "repeats",  # share of intervals that repeat the pitch
    "steps",  # share of intervals of 1-2 semitones
    "thirds",  # share of intervals of 3-4 semitones
    "leaps",  # share of intervals of 5 semitones or more
    "leap_resolution",  # share of leaps followed by a step the other way
    "contour_changes",  # share of direction changes among consecutive moves
    "ascending",  # share of moves that go up
    "note_length",  # log2 mean note length (sixteenths)
    "length_variety",  # std of log2 note lengths
    "distinct_lengths",  # distinct note lengths / 4
    "short_notes",  # share of notes of a sixteenth or an eighth
    "long_notes",  # share of notes of a half or longer
    "density",  # notes per quarter
    "rests",  # share of steps silent
    "rest_count",  # rests started, per bar
    "syncopation",  # share of notes off the beat and held across it
    "offbeat",  # share of notes starting off the beat
    "downbeats",  # share of bar downbeats that start a note
    "in_key",  # share of notes in C major / A minor
    "best_key_fit",  # share of notes in the best-fitting major scale
    "ends_tonic",  # last note C or A
    "starts_tonic",  # first note C or A
    "final_length",  # log2 length of the last note (sixteenths)
    "ends_on_downbeat",  # last note starts on a beat
    "climax_position",  # onset of the first highest note / melody length
    "unique_climax",  # the highest pitch is struck once
    "longest_run",  # longest run of one pitch struck again and again, notes / 8
    "distinct_pitches",  # distinct pitches / 12
    "pitch_variety",  # distinct pitches / notes
    "rhythm_repetition",  # share of bars whose onset pattern occurred in an earlier bar
    "motif_repetition",  # share of 4-note interval patterns that occurred earlier
    "bar_repetition",  # share of bars that repeat an earlier bar token for token
    "notes",  # note count / 32
)
"""Names of the descriptor columns, in order."""

_MAJOR = np.zeros(12, dtype=bool)
_MAJOR[[0, 2, 4, 5, 7, 9, 11]] = True
_MAJOR_SHIFTS = np.stack([np.roll(_MAJOR, k) for k in range(12)])  # [key, pitch class]
_TONICS = np.zeros(12, dtype=bool)
_TONICS[[0, 9]] = True


def _shape(melody: Melody | np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Steps per bar and per beat, the in-scale and tonic pitch-class masks: the melody's own
    metre and key for a :class:`Melody`, 4/4 in C (tonics C and A) for a token array."""
    if not isinstance(melody, Melody) or (melody.metre.name, melody.key.name) == ("4/4", "C major"):
        return STEPS_PER_BAR, 4, _MAJOR, _TONICS
    scale = np.zeros(12, dtype=bool)
    scale[list(melody.key.scale_pitch_classes())] = True
    tonic = np.zeros(12, dtype=bool)
    tonic[melody.key.tonic_pitch_class] = True
    return melody.metre.steps_per_bar, 6 if melody.metre.is_compound else 4, scale, tonic


def _tokens(melody: Melody | np.ndarray) -> np.ndarray:
    return np.asarray(melody.tokens if isinstance(melody, Melody) else melody, dtype=np.int64)


def _share(count: float, total: float) -> float:
    return float(count) / total if total > 0 else 0.0


def _repeat_share(rows: list[bytes]) -> float:
    """Share of rows (after the first) equal to an earlier one."""
    if len(rows) < 2:
        return 0.0
    seen = {rows[0]}
    repeats = 0
    for row in rows[1:]:
        repeats += row in seen
        seen.add(row)
    return repeats / (len(rows) - 1)


def describe_one(melody: Melody | np.ndarray) -> np.ndarray:
    """The descriptors of one melody, ``[len(DESCRIPTOR_NAMES)]`` (finite)."""
    tokens = _tokens(melody)
    bar_steps, beat_steps, in_scale, tonics = _shape(melody)
    length = max(int(tokens.size), 1)
    values = dict.fromkeys(DESCRIPTOR_NAMES, 0.0)
    events = np.flatnonzero(tokens != 1)  # onsets of notes and rests end the previous event
    is_note = tokens[events] >= NUM_SPECIAL_TOKENS
    ends = np.append(events[1:], tokens.size)
    onsets = events[is_note]
    durations = (ends - events)[is_note]
    pitches = tokens[onsets] - NUM_SPECIAL_TOKENS + MIN_PITCH
    bars = max(length / bar_steps, 1.0)
    lead = int(events[0]) if events.size else int(tokens.size)  # leading HOLDs continue a silence
    values["rests"] = _share(lead + int((ends - events)[~is_note].sum()), length)
    values["rest_count"] = np.count_nonzero(tokens == REST) / bars
    n = pitches.size
    values["notes"] = n / 32
    values["density"] = n / length * 4
    if n == 0:
        return np.array([values[name] for name in DESCRIPTOR_NAMES], dtype=np.float64)
    values["range"] = float(pitches.max() - pitches.min()) / 12
    values["register"] = (float(pitches.mean()) - 60) / 12
    values["pitch_spread"] = float(pitches.std()) / 12
    log_lengths = np.log2(durations)
    values["note_length"] = float(np.log2(durations.mean()))
    values["length_variety"] = float(log_lengths.std())
    values["distinct_lengths"] = np.unique(durations).size / 4
    values["short_notes"] = _share(np.count_nonzero(durations <= 2), n)
    values["long_notes"] = _share(np.count_nonzero(durations >= 8), n)
    beat = onsets % beat_steps
    values["offbeat"] = _share(np.count_nonzero(beat != 0), n)
    values["syncopation"] = _share(np.count_nonzero((beat != 0) & (beat + durations > beat_steps)), n)
    downbeats = np.arange(0, tokens.size, bar_steps)
    values["downbeats"] = _share(np.count_nonzero(tokens[downbeats] >= NUM_SPECIAL_TOKENS), downbeats.size)
    classes = pitches % 12
    values["in_key"] = _share(np.count_nonzero(in_scale[classes]), n)
    values["best_key_fit"] = float(_MAJOR_SHIFTS[:, classes].sum(axis=1).max()) / n
    values["ends_tonic"] = float(tonics[classes[-1]])
    values["starts_tonic"] = float(tonics[classes[0]])
    values["final_length"] = float(np.log2(durations[-1]))
    values["ends_on_downbeat"] = float(onsets[-1] % beat_steps == 0)
    top = pitches.max()
    values["climax_position"] = float(onsets[int(np.argmax(pitches == top))]) / length
    values["unique_climax"] = float(np.count_nonzero(pitches == top) == 1)
    values["distinct_pitches"] = np.unique(pitches).size / 12
    values["pitch_variety"] = np.unique(pitches).size / n
    changes = np.flatnonzero(np.diff(pitches) != 0)
    values["longest_run"] = int(np.diff(np.concatenate([[-1], changes, [n - 1]])).max()) / 8
    full_bars = tokens.size // bar_steps
    if full_bars >= 2:
        grid = tokens[:full_bars * bar_steps].reshape(full_bars, bar_steps)
        values["rhythm_repetition"] = _repeat_share([(row >= NUM_SPECIAL_TOKENS).tobytes() for row in grid])
        values["bar_repetition"] = _repeat_share([row.tobytes() for row in grid])
    if n >= 2:
        intervals = np.diff(pitches)
        size = np.abs(intervals)
        m = intervals.size
        values["mean_interval"] = float(size.mean()) / 7
        values["largest_interval"] = float(size.max()) / 12
        values["repeats"] = _share(np.count_nonzero(size == 0), m)
        values["steps"] = _share(np.count_nonzero((size >= 1) & (size <= 2)), m)
        values["thirds"] = _share(np.count_nonzero((size >= 3) & (size <= 4)), m)
        leaps = size >= 5
        values["leaps"] = _share(np.count_nonzero(leaps), m)
        if m >= 2 and leaps[:-1].any():
            after = intervals[1:][leaps[:-1]]
            before = intervals[:-1][leaps[:-1]]
            resolved = (np.abs(after) <= 2) & (after != 0) & (np.sign(after) != np.sign(before))
            values["leap_resolution"] = _share(np.count_nonzero(resolved), resolved.size)
        else:
            values["leap_resolution"] = 0.5  # no leap: neither resolved nor left hanging
        moves = np.sign(intervals[intervals != 0])
        values["ascending"] = _share(np.count_nonzero(moves > 0), moves.size) if moves.size else 0.5
        if moves.size >= 2:
            values["contour_changes"] = _share(np.count_nonzero(moves[1:] != moves[:-1]), moves.size - 1)
        if m >= 4:
            patterns = np.lib.stride_tricks.sliding_window_view(intervals, 3)
            values["motif_repetition"] = _repeat_share([p.tobytes() for p in patterns])
    return np.array([values[name] for name in DESCRIPTOR_NAMES], dtype=np.float64)


def describe(melodies: Sequence[Melody | np.ndarray]) -> np.ndarray:
    """The descriptors of many melodies, ``[N, len(DESCRIPTOR_NAMES)]`` (finite)."""
    if len(melodies) == 0:
        return np.zeros((0, len(DESCRIPTOR_NAMES)))
    result = np.stack([describe_one(m) for m in melodies])
    return np.nan_to_num(result, nan=0.0, posinf=0.0, neginf=0.0)


def reference_statistics(raw: np.ndarray, floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each descriptor over reference melodies (std at least ``floor``)."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[0] < 2:
        raise ValueError("reference statistics need at least 2 melodies")
    return raw.mean(axis=0), np.maximum(raw.std(axis=0), floor)


def standardise(raw: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Z-scores of raw descriptors against reference statistics, clipped to ±``clip``."""
    return np.clip((np.asarray(raw, dtype=np.float64) - mean) / std, -clip, clip)


__all__ = ["DESCRIPTOR_NAMES", "describe", "describe_one", "reference_statistics", "standardise"]
