"""The token encoding of a melody (the Magenta melody encoding used by RL Tuner).

A grid of sixteenth notes, one token per step:

* ``REST`` (0): silence starts on this step.
* ``HOLD`` (1): keep sounding the previous note; after a ``REST`` or at step 0
  it continues the silence.
* ``pitch_token(p)`` (2 + p - 48): a note of MIDI pitch ``p`` starts on this step,
  for ``p`` in ``MIN_PITCH..MAX_PITCH`` (48..84, C3..C6).

A quarter note is ``STEPS_PER_QUARTER`` = 4 steps; a bar of 4/4 is ``STEPS_PER_BAR``
= 16 steps. :class:`MelodyError` is what anything that cannot be a melody raises.
"""

from __future__ import annotations

import math

from rlcomposer.errors import RLComposerError

REST = 0
HOLD = 1
MIN_PITCH = 48
MAX_PITCH = 84
NUM_SPECIAL_TOKENS = 2
VOCAB_SIZE = NUM_SPECIAL_TOKENS + MAX_PITCH - MIN_PITCH + 1  # 39
STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16

Note = tuple[int, float, float]
"""A sounding note: ``(midi_pitch, onset_beats, duration_beats)`` in quarter notes."""


class MelodyError(RLComposerError):
    """A melody, or a file meant to hold one, that cannot be represented.

    ``reason`` is a short machine-readable word (``"chord"``, ``"off-grid"``,
    ``"pitch-range"``, ...), used by the corpus to count skipped tunes.
    """

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


def pitch_token(pitch: int) -> int:
    """The token that starts a note of MIDI ``pitch``."""
    if not MIN_PITCH <= pitch <= MAX_PITCH:
        raise MelodyError(
            f"pitch {pitch} is outside the melody range {MIN_PITCH}-{MAX_PITCH}", "pitch-range"
        )
    return NUM_SPECIAL_TOKENS + pitch - MIN_PITCH


def token_pitch(token: int) -> int | None:
    """The MIDI pitch a token starts, or ``None`` for ``REST`` / ``HOLD``."""
    return None if token < NUM_SPECIAL_TOKENS else token - NUM_SPECIAL_TOKENS + MIN_PITCH


def token_name(token: int) -> str:
    """A readable name: ``REST``, ``HOLD`` or a pitch such as ``C4``."""
    if token == REST:
        return "REST"
    if token == HOLD:
        return "HOLD"
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    pitch = token_pitch(token)
    assert pitch is not None
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def grid_steps(beats: float, what: str) -> int:
    """``beats`` quarter notes in sixteenth steps; off the grid raises :class:`MelodyError` naming ``what``."""
    steps = float(beats) * STEPS_PER_QUARTER
    rounded = round(steps)
    if abs(steps - rounded) > 1e-6:
        raise MelodyError(f"{what} {float(beats):g} beats is off the sixteenth-note grid", "off-grid")
    return int(rounded)



def whole_bars(num_steps: int, steps_per_bar: int = STEPS_PER_BAR) -> int:
    """Round a length up to whole bars (of ``steps_per_bar`` steps, default 4/4's 16)."""
    return int(math.ceil(num_steps / steps_per_bar) * steps_per_bar)


__all__ = [
    "HOLD", "MAX_PITCH", "MIN_PITCH", "NUM_SPECIAL_TOKENS", "REST", "STEPS_PER_BAR", "STEPS_PER_QUARTER",
    "VOCAB_SIZE", "MelodyError", "Note", "grid_steps", "pitch_token", "token_name", "token_pitch", "whole_bars",
]
