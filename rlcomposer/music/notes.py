"""The sounding notes of token arrays: the one token -> note decoder.

A note starts at a pitch token and lasts until the next ``REST`` or pitch token
(or the melody's end); ``HOLD`` continues whatever sounds (silence at the start).
Onsets and durations are in sixteenth steps, whatever the metre: barring them is
the caller's business (``steps_per_bar`` of the melody's
:class:`~rlcomposer.music.metre.Metre`).

* :func:`note_events`: one melody ``[T]`` -> onsets, MIDI pitches, durations
  (what :meth:`~rlcomposer.music.melody.Melody.notes` reads in quarter notes);
* :func:`note_grid`: many melodies ``[N, T]`` at once, padded to the longest
  note count (:class:`NoteGrid`), vectorised with numpy.

Both give the same notes (``tests/test_notes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlcomposer.music.tokens import HOLD, MIN_PITCH, NUM_SPECIAL_TOKENS, MelodyError


def note_events(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset steps, MIDI pitches, durations in steps) of one melody's sounding notes, in order."""
    tokens = np.asarray(tokens)
    events = np.flatnonzero(tokens != HOLD)  # note onsets and rests end the previous event
    is_note = tokens[events] >= NUM_SPECIAL_TOKENS
    ends = np.append(events[1:], tokens.size)
    onsets = events[is_note]
    pitches = tokens[onsets].astype(np.int64) - NUM_SPECIAL_TOKENS + MIN_PITCH
    return onsets, pitches, (ends - events)[is_note]


@dataclass(frozen=True)
class NoteGrid:
    """The sounding notes of ``N`` melodies of ``T`` steps, padded to ``M`` notes each.

    Row ``i`` holds its ``count[i]`` notes first (``valid[i, :count[i]]``); the
    padding is 0. Onsets and durations are in steps. ``silent[i, t]`` is True
    where step ``t`` is silence (after a ``REST``, or a leading ``HOLD``).
    """

    pitch: np.ndarray  # [N, M] MIDI pitch
    onset: np.ndarray  # [N, M] step of the note's onset
    duration: np.ndarray  # [N, M] steps until the next onset or rest (or the end)
    valid: np.ndarray  # [N, M] bool
    count: np.ndarray  # [N] notes per melody
    silent: np.ndarray  # [N, T] bool
    num_steps: int


def note_grid(tokens: np.ndarray) -> NoteGrid:
    """The notes of a token array ``[N, T]`` (or one melody ``[T]``), vectorised."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim == 1:
        tokens = tokens[None, :]
    if tokens.ndim != 2 or tokens.shape[1] == 0:
        raise MelodyError(f"tokens of shape {tokens.shape} are not [melodies, steps]", "invalid")
    num, steps = tokens.shape
    event = tokens != HOLD
    event[:, 0] = True  # a leading HOLD continues the (initial) silence
    onset = tokens >= NUM_SPECIAL_TOKENS
    position = np.arange(steps)
    # the next event strictly after each step ends the note that starts there
    next_event = np.minimum.accumulate(np.where(event, position, steps)[:, ::-1], axis=1)[:, ::-1]
    next_event = np.concatenate([next_event[:, 1:], np.full((num, 1), steps)], axis=1)
    last_event = np.maximum.accumulate(np.where(event, position, 0), axis=1)
    silent = ~np.take_along_axis(onset, last_event, axis=1)
    count = onset.sum(axis=1)
    width = max(int(count.max()), 1)
    rows, cols = np.nonzero(onset)
    rank = (np.cumsum(onset, axis=1) - 1)[rows, cols]
    pitch = np.zeros((num, width), dtype=np.int64)
    start = np.zeros((num, width), dtype=np.int64)
    duration = np.zeros((num, width), dtype=np.int64)
    pitch[rows, rank] = tokens[rows, cols] - NUM_SPECIAL_TOKENS + MIN_PITCH
    start[rows, rank] = cols
    duration[rows, rank] = next_event[rows, cols] - cols
    valid = np.arange(width)[None, :] < count[:, None]
    return NoteGrid(pitch, start, duration, valid, count, silent, steps)


__all__ = ["NoteGrid", "note_events", "note_grid"]
