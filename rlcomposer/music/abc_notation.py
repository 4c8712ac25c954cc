"""ABC notation: the shared tables, and one single-voice tune written from notes on the sixteenth grid.

:func:`write_abc` writes what :class:`~rlcomposer.music.melody.Melody` holds as a tune a
folk musician reads: ``X:``, ``T:``, ``M:``, ``L:1/8``, ``K:`` with its mode (``K:Dmaj``,
``K:Ador``, ``K:Emin``), the pick-up as an incomplete first bar, a bar line after every
bar (four bars a line), ``|]`` at the end, ties (``-``) over bar lines, rests ``z``, and
accidentals against the key signature (written again wherever a bar could leave doubt).

Reading ABC is :mod:`rlcomposer.music.abc_reading` (:func:`~rlcomposer.music.abc_reading.read_abc`),
which uses the tables and :func:`key_signature` here.
"""

from __future__ import annotations

from rlcomposer.music.keys import Key
from rlcomposer.music.metre import Metre

ABC_UNIT_STEPS = 2
"""The written unit note length, ``L:1/8``: two sixteenth steps."""
BARS_PER_LINE = 4
"""Bars on one line of the written tune."""

_NOTE_VALUES = (32, 24, 16, 12, 8, 6, 4, 3, 2, 1)
"""Lengths written as one note (plain and dotted values), longest first; others are tied."""
_LETTERS = "CDEFGAB"
LETTER_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
"""The pitch class of each natural note letter (read and written alike)."""
_SHARP_ORDER = "FCGDAEB"
_MODE_WORDS = {"major": "maj", "minor": "min", "dorian": "dor", "mixolydian": "mix",
               "phrygian": "phr", "lydian": "lyd", "locrian": "loc"}


def key_signature(key: Key) -> dict[str, int]:
    """The alteration (+1 sharp, -1 flat, 0) of each letter in ``key``'s signature."""
    sharps = key.sharps
    order = _SHARP_ORDER if sharps >= 0 else _SHARP_ORDER[::-1]
    altered = set(order[:abs(sharps)])
    return {letter: (1 if sharps > 0 else -1) if letter in altered else 0 for letter in _LETTERS}


def _spell(pitch: int, signature: dict[str, int], prefer_sharps: bool) -> tuple[str, int, int]:
    """``(letter, alteration, octave)`` of a MIDI pitch: the key's own note where there is one,
    else a natural, else a sharp (a flat in flat keys)."""
    pitch_class = pitch % 12
    candidates = [(letter, alter) for letter in _LETTERS for alter in (-1, 0, 1)
                  if (LETTER_PITCH_CLASSES[letter] + alter) % 12 == pitch_class]
    in_key = [c for c in candidates if signature[c[0]] == c[1]]
    if in_key:
        letter, alter = in_key[0]
    else:
        order = (0, 1, -1) if prefer_sharps else (0, -1, 1)
        letter, alter = min(candidates, key=lambda c: order.index(c[1]))
    octave = (pitch - alter) // 12 - 1
    return letter, alter, octave


def _pitch_text(letter: str, octave: int) -> str:
    if octave >= 5:
        return letter.lower() + "'" * (octave - 5)
    return letter + "," * (4 - octave)


def _length_text(steps: int) -> str:
    if steps % ABC_UNIT_STEPS == 0:
        units = steps // ABC_UNIT_STEPS
        return "" if units == 1 else str(units)
    return "/" if steps == 1 else f"{steps}/{ABC_UNIT_STEPS}"


def _pieces(steps: int) -> list[int]:
    """``steps`` as note values that are written as one note each (tied together)."""
    pieces = []
    while steps:
        value = next(v for v in _NOTE_VALUES if v <= steps)
        pieces.append(value)
        steps -= value
    return pieces


def key_field(key: Key) -> str:
    """The ``K:`` value of a key: ``Dmaj``, ``Ador``, ``Bbmix``."""
    return f"{key.tonic}{_MODE_WORDS[key.mode]}"


def write_abc(notes, num_steps: int, metre: Metre, key: Key, pickup_steps: int = 0,
              title: str = "Melody", index: int = 1) -> str:
    """A single-voice ABC tune of ``notes`` (``(midi_pitch, start_step, length_steps)``, in order,
    not overlapping) lasting ``num_steps`` steps, with its first ``pickup_steps`` as a pick-up."""
    bar = metre.steps_per_bar
    bounds = sorted({0, num_steps, *range(pickup_steps or bar, num_steps, bar)})
    events: list[tuple[int, int, int | None]] = []  # (start, length, pitch or None for a rest)
    cursor = 0
    for pitch, start, length in notes:
        if start > cursor:
            events.append((cursor, start - cursor, None))
        events.append((start, length, int(pitch)))
        cursor = start + length
    if cursor < num_steps:
        events.append((cursor, num_steps - cursor, None))
    signature = key_signature(key)
    explicit_all = key.mode == "locrian"  # music21 reads K:...loc as a major signature: spell every note
    bars: list[str] = []
    for bar_start, bar_end in zip(bounds[:-1], bounds[1:], strict=True):
        written: list[str] = []
        marked: set[str] = set()  # letters given an accidental in this bar
        for start, length, pitch in events:
            begin, end = max(start, bar_start), min(start + length, bar_end)
            if begin >= end:
                continue
            pieces = _pieces(end - begin)
            if pitch is None:
                written.extend("z" + _length_text(p) for p in pieces)
                continue
            letter, alter, octave = _spell(pitch, signature, key.sharps >= 0)
            accidental = ""
            if explicit_all or alter != signature[letter] or letter in marked:
                accidental = {-1: "_", 0: "=", 1: "^"}[alter]
                marked.add(letter)
            name = _pitch_text(letter, octave)
            for number, piece in enumerate(pieces):
                tied = number < len(pieces) - 1 or start + length > end
                written.append(accidental + name + _length_text(piece)  # music21 wants it on a tied note too
                               + ("-" if tied else ""))
        bars.append(" ".join(written))
    lines = []
    head = 1 if pickup_steps else 0  # the pick-up shares the first line with four full bars
    starts = [0, *range(head + BARS_PER_LINE, len(bars), BARS_PER_LINE)]
    for number, first in enumerate(starts):
        last = number == len(starts) - 1
        chunk = bars[first:len(bars) if last else starts[number + 1]]
        lines.append(" | ".join(chunk) + (" |]" if last else " |"))
    title = " ".join(str(title).split()) or "Melody"
    header = [f"X:{int(index)}", f"T:{title}", f"M:{metre.name}", "L:1/8", f"K:{key_field(key)}"]
    return "\n".join(header + lines) + "\n"


__all__ = ["ABC_UNIT_STEPS", "BARS_PER_LINE", "LETTER_PITCH_CLASSES", "key_field", "key_signature", "write_abc"]
