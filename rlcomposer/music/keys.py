"""Keys and modes: a melody's tonic and scale, and its key signature.

A :class:`Key` is a spelled tonic (``"D"``, ``"Bb"``, ``"F#"``) and a mode from
:data:`MODES`: major, minor and the church modes the folk collections use
(dorian and mixolydian above all; phrygian, lydian and locrian for completeness).

The corpus transposes every tune so that its tonic is C (the *reference tonic*):
the prior learns melodies of each mode on C and is told the mode; a melody for
another key is generated on C and transposed (:meth:`Key.transposition`). The
music metrics judge "in key" and "tonic" against :meth:`Key.scale_pitch_classes`
and :attr:`Key.tonic_pitch_class`, so C dorian's E-flat is in key and E is not.

The key signature is pure arithmetic on the circle of fifths: a letter's place
(F=-1, C=0, G=1, ... B=5), plus 7 per sharp of the tonic (minus 7 per flat),
plus the mode's offset (dorian -2: D dorian has no sharps or flats). A key that
would need more than seven sharps or flats (G# major) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcomposer.errors import RLComposerError

MODES = ("major", "minor", "dorian", "mixolydian", "phrygian", "lydian", "locrian")
"""Every mode rlcomposer knows; the prior's mode input is the position here."""

MODE_INTERVALS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}
"""Semitones above the tonic of each mode's seven degrees."""

_MODE_FIFTHS = {"major": 0, "minor": -3, "dorian": -2, "mixolydian": -1, "phrygian": -4,
                "lydian": 1, "locrian": -5}
_MODE_ALIASES = {"maj": "major", "ionian": "major", "ion": "major", "min": "minor", "m": "minor",
                 "aeolian": "minor", "aeo": "minor", "dor": "dorian", "mix": "mixolydian",
                 "phr": "phrygian", "lyd": "lydian", "loc": "locrian"}
_LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
_LETTER_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


class KeyNameError(RLComposerError):
    """A tonic spelling or mode rlcomposer does not know."""


def parse_mode(value: str | None) -> str:
    """The mode's full name from ``"dorian"``, ``"dor"``, ``"m"``, ...; None is major."""
    if value is None:
        return "major"
    text = str(value).strip().lower()
    text = _MODE_ALIASES.get(text, text)
    if text not in MODES:
        raise KeyNameError(f"unknown mode {value!r}: choose one of {', '.join(MODES)}")
    return text


def _parse_tonic(value: str) -> tuple[str, int]:
    """``(spelling, alteration)``: "Bb" -> ("Bb", -1); music21's "B-" is accepted too."""
    text = str(value).strip()
    if not text or text[0].upper() not in _LETTER_FIFTHS:
        raise KeyNameError(f"unknown key {value!r}: a tonic is a letter A-G with an optional # or b")
    letter, accidentals = text[0].upper(), text[1:]
    if accidentals and set(accidentals) <= {"#"}:
        alteration = len(accidentals)
    elif accidentals and set(accidentals) <= {"b", "-"}:
        alteration = -len(accidentals)
    elif accidentals:
        raise KeyNameError(f"unknown key {value!r}: a tonic is a letter A-G with an optional # or b")
    else:
        alteration = 0
    if abs(alteration) > 1:
        raise KeyNameError(f"unknown key {value!r}: use a tonic with at most one sharp or flat")
    return letter + {1: "#", -1: "b", 0: ""}[alteration], alteration


@dataclass(frozen=True)
class Key:
    """A tonic (spelled, e.g. ``"F#"``) and a mode. Build one with :func:`parse_key`."""

    tonic: str = "C"
    mode: str = "major"

    def __post_init__(self) -> None:
        spelling, _ = _parse_tonic(self.tonic)
        object.__setattr__(self, "tonic", spelling)
        object.__setattr__(self, "mode", parse_mode(self.mode))
        if abs(self.sharps) > 7:
            raise KeyNameError(
                f"{self.name} needs {abs(self.sharps)} {'sharps' if self.sharps > 0 else 'flats'}: "
                "spell its tonic the other way (e.g. Ab for G#)"
            )

    @property
    def name(self) -> str:
        return f"{self.tonic} {self.mode}"

    def __str__(self) -> str:
        return self.name

    @property
    def tonic_pitch_class(self) -> int:
        _, alteration = _parse_tonic(self.tonic)
        return (_LETTER_PITCH_CLASS[self.tonic[0]] + alteration) % 12

    @property
    def sharps(self) -> int:
        """The key signature: sharps (negative: flats)."""
        _, alteration = _parse_tonic(self.tonic)
        return _LETTER_FIFTHS[self.tonic[0]] + 7 * alteration + _MODE_FIFTHS[self.mode]

    def scale_pitch_classes(self) -> frozenset[int]:
        """The seven pitch classes of the scale."""
        return frozenset((self.tonic_pitch_class + i) % 12 for i in MODE_INTERVALS[self.mode])

    def transposition(self) -> int:
        """Semitones from the reference tonic C up to this tonic, in ``-5..+6``."""
        shift = self.tonic_pitch_class
        return shift - 12 if shift > 6 else shift

    @property
    def mode_index(self) -> int:
        return MODES.index(self.mode)


DEFAULT_KEY = Key("C", "major")


def parse_key(tonic: str | Key | None = None, mode: str | None = None) -> Key:
    """A :class:`Key` from a tonic spelling and a mode name (defaults: C, major)."""
    if isinstance(tonic, Key):
        return tonic if mode is None else Key(tonic.tonic, mode)
    return Key("C" if tonic is None else tonic, "major" if mode is None else mode)
