"""Interpretable musical descriptors of a melody, for the reward model.

A frozen GRU summary of a melody (its mean and last hidden state) sees local
note-to-note patterns well but global shape poorly. These descriptors say that
shape in numbers: range and register, intervals (steps, leaps, how leaps are
resolved, contour changes), rhythm (note lengths and their variety, rests,
syncopation, density), key (share of notes in the melody's key, fit to the best
major key, ending and starting on the tonic, a long final note), climax (where
the highest note falls, whether it is struck once) and repetition (repeated-pitch
runs, distinct pitches, bars whose rhythm or interval pattern recurs).

A :class:`~rlcomposer.music.melody.Melody` is read in its own metre, key and
pick-up: beats are :attr:`~rlcomposer.music.metre.Metre.beat_steps` long (a
dotted quarter in 6/8, a quarter in 3/4), bars ``steps_per_bar``, metric
positions count from :attr:`~rlcomposer.music.melody.Melody.metric_offset` (so
the bars compared for repetition are the whole bars after the pick-up), and the
scale and tonic are the key's (a melody in C major keeps both C and A as tonics,
as ever). A bare token array is read as 4/4 in C from a downbeat.

They are written here for the reward model alone, from the tokens, so a
simulated listener's own features are never copied into what the model learns.

:func:`describe` gives ``[N, len(DESCRIPTOR_NAMES)]`` raw values (finite for
any melody, even one without notes); :func:`standardise` z-scores them with
statistics measured on reference melodies (prior samples), clipped to ±5.

:func:`describe_one` is the readable reference, one melody at a time in plain
numpy. :func:`describe` computes the same numbers (to float rounding) for a
whole batch with array operations: it groups the melodies that share a length,
metre, key and pick-up, lays each group's notes out melody after melody, and takes
per-melody counts, sums and extremes over those runs, many times faster than
calling :func:`describe_one` for each melody of a best-of-N batch
(``experiments/bench_tuned_sampling.py``; ``tests/test_descriptors_batch.py``
holds the two to the same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlcomposer.music.melody import (
    HOLD,
    MAX_PITCH,
    MIN_PITCH,
    NUM_SPECIAL_TOKENS,
    REST,
    STEPS_PER_BAR,
    VOCAB_SIZE,
    Melody,
    MelodyError,
)

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
    "in_key",  # share of notes in the melody's key (token arrays: C major / A minor)
    "best_key_fit",  # share of notes in the best-fitting major scale
    "ends_tonic",  # last note on the tonic (token arrays and C major: C or A)
    "starts_tonic",  # first note on the tonic
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


_TOKEN_SHAPE = (STEPS_PER_BAR, 4, _MAJOR, _TONICS, 0)
"""How a token array is read: 4/4 in C (tonics C and A), from a downbeat."""


def _shape(melody: Melody | np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray, int]:
    """Steps per bar and per beat (:attr:`~rlcomposer.music.metre.Metre.beat_steps`), the in-scale
    and tonic pitch-class masks and the metric position of step 0 (the pick-up's
    :attr:`~rlcomposer.music.melody.Melody.metric_offset`): the melody's own metre, key and pick-up
    for a :class:`Melody`, 4/4 in C (tonics C and A) from a downbeat for a token array."""
    if not isinstance(melody, Melody):
        return _TOKEN_SHAPE
    if (melody.metre.name, melody.key.name) == ("4/4", "C major"):
        return STEPS_PER_BAR, 4, _MAJOR, _TONICS, melody.metric_offset
    scale = np.zeros(12, dtype=bool)
    scale[list(melody.key.scale_pitch_classes())] = True
    tonic = np.zeros(12, dtype=bool)
    tonic[melody.key.tonic_pitch_class] = True
    return melody.metre.steps_per_bar, melody.metre.beat_steps, scale, tonic, melody.metric_offset


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
    """The descriptors of one melody, ``[len(DESCRIPTOR_NAMES)]`` (finite): the readable reference
    that :func:`describe` matches for whole batches (use that to describe many melodies)."""
    tokens = _tokens(melody)
    bar_steps, beat_steps, in_scale, tonics, offset = _shape(melody)
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
    beat = (onsets + offset) % beat_steps
    values["offbeat"] = _share(np.count_nonzero(beat != 0), n)
    values["syncopation"] = _share(np.count_nonzero((beat != 0) & (beat + durations > beat_steps)), n)
    first_downbeat = (-offset) % bar_steps  # step 0 or the first step after the pick-up
    downbeats = np.arange(first_downbeat, tokens.size, bar_steps)
    values["downbeats"] = _share(np.count_nonzero(tokens[downbeats] >= NUM_SPECIAL_TOKENS), downbeats.size)
    classes = pitches % 12
    values["in_key"] = _share(np.count_nonzero(in_scale[classes]), n)
    values["best_key_fit"] = float(_MAJOR_SHIFTS[:, classes].sum(axis=1).max()) / n
    values["ends_tonic"] = float(tonics[classes[-1]])
    values["starts_tonic"] = float(tonics[classes[0]])
    values["final_length"] = float(np.log2(durations[-1]))
    values["ends_on_downbeat"] = float((onsets[-1] + offset) % beat_steps == 0)
    top = pitches.max()
    values["climax_position"] = float(onsets[int(np.argmax(pitches == top))]) / length
    values["unique_climax"] = float(np.count_nonzero(pitches == top) == 1)
    values["distinct_pitches"] = np.unique(pitches).size / 12
    values["pitch_variety"] = np.unique(pitches).size / n
    changes = np.flatnonzero(np.diff(pitches) != 0)
    values["longest_run"] = int(np.diff(np.concatenate([[-1], changes, [n - 1]])).max()) / 8
    full_bars = (tokens.size - first_downbeat) // bar_steps  # whole bars after the pick-up
    if full_bars >= 2:
        grid = tokens[first_downbeat:first_downbeat + full_bars * bar_steps].reshape(full_bars, bar_steps)
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


_COLUMNS = {name: index for index, name in enumerate(DESCRIPTOR_NAMES)}
_INTERVAL_CODES = 2 * (MAX_PITCH - MIN_PITCH) + 1  # intervals -36..36, as 0..72
_TOKEN_CLASSES = np.zeros((VOCAB_SIZE, 12), dtype=np.int64)  # [token, pitch class]: 1 where the token's note has it
_TOKEN_CLASSES[np.arange(NUM_SPECIAL_TOKENS, VOCAB_SIZE),
               (np.arange(NUM_SPECIAL_TOKENS, VOCAB_SIZE) - NUM_SPECIAL_TOKENS + MIN_PITCH) % 12] = 1


def _pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Small non-negative integers along the last axis packed into int64 words, ``[..., words]``:
    two rows are equal exactly when their packed words are."""
    per_word = 63 // bits
    steps = values.shape[-1]
    words = -(-steps // per_word)
    padded = np.zeros((*values.shape[:-1], words * per_word), dtype=np.int64)
    padded[..., :steps] = values
    powers = np.left_shift(1, bits * np.arange(per_word, dtype=np.int64))
    return padded.reshape(*values.shape[:-1], words, per_word) @ powers


def _repeat_counts(rows: np.ndarray) -> np.ndarray:
    """``[B, R, W]`` packed rows of each melody -> ``[B]`` how many rows (after the first) equal an earlier one."""
    repeats = np.zeros(rows.shape[0], dtype=np.int64)
    for index in range(1, rows.shape[1]):
        repeats += (rows[:, :index] == rows[:, index:index + 1]).all(axis=2).any(axis=1)
    return repeats


def _describe_group(tokens: np.ndarray, bar_steps: int, beat_steps: int, in_scale: np.ndarray,
                    tonics: np.ndarray, offset: int = 0) -> np.ndarray:
    """The descriptors of ``[B, L]`` melodies of one length, metre, key and pick-up (step 0 at
    metric position ``offset``), all at once: the same
    numbers as :func:`describe_one` row by row. Notes are flattened melody after melody (``rows``
    says whose), and per-melody sums, counts and extremes are taken over those runs."""
    count, steps = tokens.shape
    out = np.zeros((count, len(DESCRIPTOR_NAMES)))
    if steps == 0:
        return out

    def put(name: str, values: np.ndarray, where: np.ndarray) -> None:
        out[where, _COLUMNS[name]] = values[where]

    def per_melody(mask: np.ndarray, which: np.ndarray) -> np.ndarray:
        return np.bincount(which[mask], minlength=count)

    everyone = np.ones(count, dtype=bool)
    rows, onsets = np.nonzero(tokens >= NUM_SPECIAL_TOKENS)  # every note, melody after melody
    # the step where the event after each step starts (a note or a rest; the melody's end)
    event_at = np.where(tokens != HOLD, np.arange(steps), steps)
    next_event = np.full_like(event_at, steps)
    next_event[:, :-1] = np.minimum.accumulate(event_at[:, :0:-1], axis=1)[:, ::-1]
    durations = next_event[rows, onsets] - onsets
    notes = np.bincount(rows, minlength=count)
    sounding = np.bincount(rows, weights=durations, minlength=count)
    put("rests", (steps - sounding) / steps, everyone)  # leading silence and rests: what no note covers
    put("rest_count", np.count_nonzero(tokens == REST, axis=1) / max(steps / bar_steps, 1.0), everyone)
    put("notes", notes / 32, everyone)
    put("density", notes / steps * 4, everyone)
    has = notes > 0
    if not has.any():
        return out
    total = np.maximum(notes, 1)  # divides only where there are notes
    first = np.cumsum(notes) - notes  # index of each melody's first note
    starts = first[has]

    def spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # per-melody mean and std
        mean = np.zeros(count)
        mean[has] = np.add.reduceat(values, starts) / notes[has]
        deviation = values - mean[rows]
        return mean, np.sqrt(np.bincount(rows, weights=deviation * deviation, minlength=count) / total)

    def per_melody_extreme(function: np.ufunc, values: np.ndarray) -> np.ndarray:
        result = np.zeros(count, dtype=values.dtype)
        result[has] = function.reduceat(values, starts)
        return result

    note_tokens = tokens[rows, onsets]
    pitches = note_tokens - NUM_SPECIAL_TOKENS + MIN_PITCH
    top = per_melody_extreme(np.maximum, pitches)
    put("range", (top - per_melody_extreme(np.minimum, pitches)) / 12, has)
    mean_pitch, pitch_std = spread(pitches.astype(np.float64))
    put("register", (mean_pitch - 60) / 12, has)
    put("pitch_spread", pitch_std / 12, has)
    put("note_length", np.log2(np.maximum(sounding, 1) / total), has)
    put("length_variety", spread(np.log2(durations))[1], has)
    lengths_used = np.zeros((count, steps + 1), dtype=bool)  # [melody, note length]
    lengths_used[rows, durations] = True
    put("distinct_lengths", np.count_nonzero(lengths_used, axis=1) / 4, has)
    put("short_notes", per_melody(durations <= 2, rows) / total, has)
    put("long_notes", per_melody(durations >= 8, rows) / total, has)
    beat = (onsets + offset) % beat_steps
    put("offbeat", per_melody(beat != 0, rows) / total, has)
    put("syncopation", per_melody((beat != 0) & (beat + durations > beat_steps), rows) / total, has)
    first_downbeat = (-offset) % bar_steps
    downbeats = tokens[:, first_downbeat::bar_steps] >= NUM_SPECIAL_TOKENS
    put("downbeats", np.count_nonzero(downbeats, axis=1) / max(downbeats.shape[1], 1), has)
    token_counts = np.bincount(rows * VOCAB_SIZE + note_tokens, minlength=count * VOCAB_SIZE)
    token_counts = token_counts.reshape(count, VOCAB_SIZE)
    class_counts = token_counts @ _TOKEN_CLASSES
    put("in_key", class_counts @ in_scale.astype(np.int64) / total, has)
    put("best_key_fit", (class_counts @ _MAJOR_SHIFTS.T.astype(np.int64)).max(axis=1) / total, has)
    classes = pitches % 12
    last = first + notes - 1
    at_first, at_last = np.minimum(first, rows.size - 1), np.maximum(last, 0)  # valid where has
    put("ends_tonic", tonics[classes[at_last]].astype(np.float64), has)
    put("starts_tonic", tonics[classes[at_first]].astype(np.float64), has)
    put("final_length", np.log2(durations[at_last]).astype(np.float64), has)
    put("ends_on_downbeat", ((onsets[at_last] + offset) % beat_steps == 0).astype(np.float64), has)
    is_top = pitches == top[rows]
    top_notes = np.flatnonzero(is_top)
    first_top = top_notes[np.r_[True, rows[top_notes][1:] != rows[top_notes][:-1]]]
    climax = np.zeros(count)
    climax[rows[first_top]] = onsets[first_top] / steps
    put("climax_position", climax, has)
    put("unique_climax", (per_melody(is_top, rows) == 1).astype(np.float64), has)
    distinct_pitches = np.count_nonzero(token_counts, axis=1)
    put("distinct_pitches", distinct_pitches / 12, has)
    put("pitch_variety", distinct_pitches / total, has)
    new_run = np.r_[True, (pitches[1:] != pitches[:-1]) | (rows[1:] != rows[:-1])]
    run = np.cumsum(new_run) - 1
    longest = np.zeros(count, dtype=np.int64)
    longest[has] = np.maximum.reduceat(np.bincount(run), run[starts])
    put("longest_run", longest / 8, has)
    full_bars = (steps - first_downbeat) // bar_steps
    if full_bars >= 2:
        grid = tokens[:, first_downbeat:first_downbeat + full_bars * bar_steps].reshape(count, full_bars, bar_steps)
        rhythm = _repeat_counts(_pack(grid >= NUM_SPECIAL_TOKENS, 1))
        put("rhythm_repetition", rhythm / (full_bars - 1), has)
        put("bar_repetition", _repeat_counts(_pack(grid, 6)) / (full_bars - 1), has)
    # intervals: between consecutive notes of one melody
    same = rows[1:] == rows[:-1]
    intervals = np.diff(pitches)[same]
    owner = rows[1:][same]
    moves_made = notes - 1  # intervals per melody
    melodic = notes >= 2
    if not melodic.any():
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    size = np.abs(intervals)
    per_interval = np.maximum(moves_made, 1)
    put("mean_interval", np.bincount(owner, weights=size, minlength=count) / per_interval / 7, melodic)
    largest = np.zeros(count, dtype=np.int64)
    interval_first = np.cumsum(np.maximum(moves_made, 0)) - np.maximum(moves_made, 0)
    largest[melodic] = np.maximum.reduceat(size, interval_first[melodic])
    put("largest_interval", largest / 12, melodic)
    put("repeats", per_melody(size == 0, owner) / per_interval, melodic)
    put("steps", per_melody((size >= 1) & (size <= 2), owner) / per_interval, melodic)
    put("thirds", per_melody((size >= 3) & (size <= 4), owner) / per_interval, melodic)
    put("leaps", per_melody(size >= 5, owner) / per_interval, melodic)
    # a leap and the interval after it (in the same melody)
    pair = owner[1:] == owner[:-1]
    before, after, pair_owner = intervals[:-1][pair], intervals[1:][pair], owner[1:][pair]
    leap = np.abs(before) >= 5
    leaps_followed = per_melody(leap, pair_owner)
    resolved = leap & (np.abs(after) <= 2) & (after != 0) & (np.sign(after) != np.sign(before))
    resolution = np.where(leaps_followed > 0, per_melody(resolved, pair_owner) / np.maximum(leaps_followed, 1), 0.5)
    put("leap_resolution", resolution, melodic)
    moving = intervals != 0
    moves, move_owner = np.sign(intervals[moving]), owner[moving]
    move_count = np.bincount(move_owner, minlength=count)
    ascending = np.where(move_count > 0, per_melody(moves > 0, move_owner) / np.maximum(move_count, 1), 0.5)
    put("ascending", ascending, melodic)
    turns = (moves[1:] != moves[:-1]) & (move_owner[1:] == move_owner[:-1])
    put("contour_changes", per_melody(turns, move_owner[1:]) / np.maximum(move_count - 1, 1),
        melodic & (move_count >= 2))
    # motifs: three consecutive intervals of one melody, as one number
    window = owner[2:] == owner[:-2]
    codes = ((intervals[:-2] + MAX_PITCH - MIN_PITCH) * _INTERVAL_CODES
             + intervals[1:-1] + MAX_PITCH - MIN_PITCH) * _INTERVAL_CODES + intervals[2:] + MAX_PITCH - MIN_PITCH
    window_owner = owner[2:][window]
    windows = np.bincount(window_owner, minlength=count)
    if windows.max() >= 2:
        # each melody's codes in a row of their own, sorted: a code equal to its left neighbour
        # repeats an earlier pattern (padding takes distinct negative values, which never repeat)
        width = int(windows.max())
        table = np.broadcast_to(-1 - np.arange(width), (count, width)).copy()
        window_first = np.cumsum(windows) - windows
        table[window_owner, np.arange(window_owner.size) - window_first[window_owner]] = codes[window]
        table.sort(axis=1)
        repeated = np.count_nonzero(table[:, 1:] == table[:, :-1], axis=1)
        put("motif_repetition", repeated / np.maximum(windows - 1, 1), windows >= 2)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def describe(melodies: Sequence[Melody | np.ndarray] | np.ndarray) -> np.ndarray:
    """The descriptors of many melodies, ``[N, len(DESCRIPTOR_NAMES)]`` (finite): the numbers of
    :func:`describe_one`, computed with array operations over each group of melodies that share a
    length, metre, key and pick-up (a batch may mix them). ``melodies`` may also be one ``[N, L]`` token array.

    Raises :class:`~rlcomposer.music.melody.MelodyError` for a token array that is not 1-D or holds
    a token outside the vocabulary (a :class:`Melody` is checked when it is made).
    """
    if isinstance(melodies, np.ndarray) and melodies.ndim == 2:
        tokens = melodies.astype(np.int64)
        _check_vocabulary(tokens, np.arange(len(tokens)))
        return _describe_group(tokens, *_TOKEN_SHAPE)
    result = np.zeros((len(melodies), len(DESCRIPTOR_NAMES)))
    shapes: dict[object, tuple[int, int, np.ndarray, np.ndarray, int]] = {}
    groups: dict[tuple[object, int], list[int]] = {}
    token_rows: list[np.ndarray] = []
    for index, melody in enumerate(melodies):
        if isinstance(melody, Melody):
            tokens, shape_key = melody.tokens, (melody.metre, melody.key, melody.pickup_steps)
            if shape_key not in shapes:
                shapes[shape_key] = _shape(melody)
        else:
            tokens, shape_key = np.asarray(melody), None
            if tokens.ndim != 1:
                raise MelodyError(f"melody {index}: tokens must be a 1-D sequence, got shape {tokens.shape}")
        groups.setdefault((shape_key, tokens.size), []).append(index)
        token_rows.append(tokens)
    for (shape_key, _), indices in groups.items():
        tokens = np.stack([token_rows[i] for i in indices]).astype(np.int64)
        if shape_key is None:
            _check_vocabulary(tokens, indices)
        result[indices] = _describe_group(tokens, *(shapes.get(shape_key) or _TOKEN_SHAPE))
    return result


def _check_vocabulary(tokens: np.ndarray, indices: Sequence[int] | np.ndarray) -> None:
    """Token rows (melodies ``indices``) must hold tokens of the vocabulary only."""
    bad = (tokens < 0) | (tokens >= VOCAB_SIZE)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        token = int(tokens[row][bad[row]][0])
        raise MelodyError(f"melody {indices[row]}: token {token} is outside the vocabulary 0..{VOCAB_SIZE - 1}",
                          "pitch-range")


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
