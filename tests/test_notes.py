"""The one token -> note decoder (rlcomposer.music.notes): one melody, many at once, and Melody.notes agree."""

from __future__ import annotations

import numpy as np
import pytest

from rlcomposer.music.melody import HOLD, REST, Melody, MelodyError, pitch_token
from rlcomposer.music.notes import note_events, note_grid


def test_a_note_lasts_until_the_next_rest_or_note():
    c4, e4 = pitch_token(60), pitch_token(64)
    tokens = np.array([HOLD, c4, HOLD, HOLD, REST, HOLD, e4, HOLD, c4])  # leading HOLD: silence
    onsets, pitches, durations = note_events(tokens)
    assert onsets.tolist() == [1, 6, 8] and pitches.tolist() == [60, 64, 60] and durations.tolist() == [3, 2, 1]
    grid = note_grid(tokens)
    assert grid.count.tolist() == [3] and grid.pitch[0].tolist() == [60, 64, 60]
    assert grid.silent[0].tolist() == [True, False, False, False, True, True, False, False, False]
    assert Melody(tokens).notes() == [(60, 0.25, 0.75), (64, 1.5, 0.5), (60, 2.0, 0.25)]


def test_one_melody_many_melodies_and_melody_notes_agree():
    rng = np.random.default_rng(3)
    tokens = np.where(rng.random((200, 48)) < 0.5, HOLD, rng.integers(0, 39, (200, 48)))
    grid = note_grid(tokens)
    for i, row in enumerate(tokens):
        onsets, pitches, durations = note_events(row)
        valid = grid.valid[i]
        assert grid.count[i] == pitches.size
        assert np.array_equal(grid.onset[i][valid], onsets) and np.array_equal(grid.pitch[i][valid], pitches)
        assert np.array_equal(grid.duration[i][valid], durations)
        assert Melody(row).notes() == [(int(p), o / 4, d / 4) for p, o, d in zip(pitches, onsets, durations, strict=True)]


def test_a_token_array_that_is_not_melodies_is_refused():
    with pytest.raises(MelodyError, match="not \\[melodies, steps\\]"):
        note_grid(np.zeros((3, 0), dtype=int))
