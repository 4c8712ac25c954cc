"""A melody as a line of text a musician can read: ``r/3 G4/1 C5/0.5 ...``.

Each note is its pitch (scientific name, sharps) and its length in quarter notes;
a rest is ``r`` with its length. Used wherever tuned melodies are shown as notes
(reports, logs) so that a collapsed or silent-opening melody is seen, not only counted.
"""

from __future__ import annotations

from rlcomposer.music.melody import Melody

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def pitch_name(midi_pitch: int) -> str:
    """``60`` -> ``C4``."""
    return f"{PITCH_CLASS_NAMES[midi_pitch % 12]}{midi_pitch // 12 - 1}"


def _length(beats: float) -> str:
    return f"{beats:g}"


def note_list(melody: Melody) -> str:
    """The melody's notes and rests in order, e.g. ``r/3 G4/1 C5/1 G4/0.5``."""
    parts: list[str] = []
    position = 0.0
    for pitch, onset, duration in melody.notes():
        if onset > position + 1e-9:
            parts.append(f"r/{_length(onset - position)}")
        parts.append(f"{pitch_name(pitch)}/{_length(duration)}")
        position = onset + duration
    total = melody.num_steps * 0.25
    if total > position + 1e-9:
        parts.append(f"r/{_length(total - position)}")
    return " ".join(parts)
