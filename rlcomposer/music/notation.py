"""What a score or a file says beside its notes: the notes of a music21 stream on the
sixteenth grid, the time and key signatures of streams, MIDI files and melody JSON, and the
clef a melody is engraved with, and the incomplete first measure (measure 0) its pick-up is
engraved as."""

from __future__ import annotations

from typing import Any

from rlcomposer.music.keys import DEFAULT_KEY, Key, KeyNameError, parse_key
from rlcomposer.music.metre import DEFAULT_METRE, Metre, MetreError, parse_metre
from rlcomposer.music.tokens import STEPS_PER_QUARTER, MelodyError, grid_steps


def stream_notes(part, quantise_tuplets: bool = False,
                 counts: dict[str, int] | None = None) -> tuple[list[tuple[int, int, int]], int]:
    """``(midi, start_step, length_steps)`` of a monophonic stream's notes, and its length in steps.

    Tied notes of the same pitch merge into one. A "tie" between different
    pitches (ABC's ``G-F``, a slur written as a tie) leaves two notes, where
    music21's ``stripTies`` would merge them into one note of the first pitch.
    Grace notes are dropped; a chord or a note off the grid raises MelodyError.

    With ``quantise_tuplets``, the notes of a tuplet (a triplet of eighths in a
    quarter) start and end at the nearest step instead: the group keeps its
    span, each note moves by at most a third of a step (a triplet of eighths
    becomes 1 + 2 + 1 sixteenths); a tuplet too fast for the grid (a note left
    with no step) is still off-grid. ``counts["quantised_notes"]`` counts the
    notes moved.
    """
    from music21 import chord

    flat = part.flatten()
    notes: list[list[int]] = []  # [midi, start, length]
    tied_forward = False
    for element in flat.notesAndRests:
        if element.duration.isGrace or element.duration.quarterLength == 0:
            continue
        if isinstance(element, chord.Chord):
            raise MelodyError(f"a chord at beat {float(element.offset):g}", "chord")
        if quantise_tuplets and element.duration.tuplets:
            start = round(float(element.offset) * STEPS_PER_QUARTER)
            stop = round(float(element.offset + element.duration.quarterLength) * STEPS_PER_QUARTER)
            length = stop - start
            if length <= 0:
                raise MelodyError(
                    f"a tuplet at beat {float(element.offset):g} is too fast for the sixteenth grid",
                    "off-grid")
            exact = float(element.offset) * STEPS_PER_QUARTER
            if counts is not None and abs(exact - start) > 1e-6:
                counts["quantised_notes"] = counts.get("quantised_notes", 0) + 1
        else:
            start = grid_steps(element.offset, "a note at")
            length = grid_steps(element.duration.quarterLength, "a duration of")
        if element.isRest:
            tied_forward = False
            continue
        midi = int(element.pitch.midi)
        if tied_forward and notes[-1][0] == midi and notes[-1][1] + notes[-1][2] == start:
            notes[-1][2] += length
        else:
            notes.append([midi, start, length])
        tied_forward = element.tie is not None and element.tie.type in ("start", "continue")
    if quantise_tuplets:
        end_steps = round(float(flat.highestTime) * STEPS_PER_QUARTER)
    else:
        end_steps = grid_steps(flat.highestTime, "the end at")
    end = max([end_steps] + [s + n for _, s, n in notes])
    return [(m, s, n) for m, s, n in notes], end


def declared_metre_and_key(data: dict[str, Any]) -> tuple[Metre, Key]:
    """The ``metre`` and ``key`` a melody JSON declares (4/4, C major when absent)."""
    try:
        metre = parse_metre(data.get("metre"))
        key = data.get("key")
        if key is None:
            return metre, DEFAULT_KEY
        if not isinstance(key, dict):
            raise MelodyError("melody JSON 'key' must be an object with 'tonic' and 'mode'")
        return metre, parse_key(key.get("tonic"), key.get("mode"))
    except (MetreError, KeyNameError) as error:
        raise MelodyError(f"melody JSON: {error}", "metre") from None


def stream_metre_and_key(part) -> tuple[Metre, Key]:
    """The first time signature and key of a music21 stream (4/4, C major when absent).

    A time signature rlcomposer does not know raises :class:`MelodyError`
    (``"metre"``); a key signature without a mode reads as major.
    """
    from music21 import key as m21key
    from music21 import meter

    signature = part.recurse().getElementsByClass(meter.TimeSignature).first()
    try:
        metre = parse_metre(signature.ratioString) if signature is not None else DEFAULT_METRE
    except MetreError as error:
        raise MelodyError(str(error), "metre") from None
    found = part.recurse().getElementsByClass(m21key.KeySignature).first()
    if found is None:
        return metre, DEFAULT_KEY
    if isinstance(found, m21key.Key):
        try:
            return metre, parse_key(found.tonic.name, found.mode)
        except KeyNameError:
            pass
    return metre, key_from_sharps(int(found.sharps))


_MAJOR_BY_SHARPS = {-7: "Cb", -6: "Gb", -5: "Db", -4: "Ab", -3: "Eb", -2: "Bb", -1: "F", 0: "C",
                    1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#"}
_MINOR_BY_SHARPS = {-7: "Ab", -6: "Eb", -5: "Bb", -4: "F", -3: "C", -2: "G", -1: "D", 0: "A",
                    1: "E", 2: "B", 3: "F#", 4: "C#", 5: "G#", 6: "D#", 7: "A#"}
MIDI_PICKUP_TEXT = "rlcomposer pickup steps: "
"""Prefix of the MIDI text event that keeps a pick-up's length (a MIDI file has no partial bars)."""
MIDI_KEY_TEXT = "rlcomposer key: "
"""Prefix of the MIDI text event that keeps the mode (MIDI key signatures know only major/minor)."""


def key_from_sharps(sharps: int, minor: bool = False) -> Key:
    """The major (or minor) key of a signature of ``sharps`` (negative: flats)."""
    if not -7 <= sharps <= 7:
        raise MelodyError(f"a key signature of {sharps} sharps does not exist", "invalid")
    return Key((_MINOR_BY_SHARPS if minor else _MAJOR_BY_SHARPS)[sharps],
               "minor" if minor else "major")


def midi_key_name(key: Key) -> str:
    """The MIDI key-signature name of a key's signature (``"Am"`` for A minor; a church
    mode is written as the major key of its signature: D dorian is ``"C"``)."""
    if key.mode == "minor":
        return _MINOR_BY_SHARPS[key.sharps] + "m"
    return _MAJOR_BY_SHARPS[key.sharps]


def _start_messages(midi):
    """The messages of every track at tick 0 (where a file declares its signatures)."""
    for track in midi.tracks:
        now = 0
        for message in track:
            now += message.time
            if now > 0:
                break
            yield message


def midi_signature(midi) -> tuple[Metre, Key]:
    """The time signature and key a MIDI file declares at its start (4/4, C major when none)."""
    metre, key = DEFAULT_METRE, DEFAULT_KEY
    for message in _start_messages(midi):
        if message.type in ("time_signature", "key_signature", "text"):
            metre, key = _midi_meta(message, metre, key)
    return metre, key


def midi_pickup_steps(midi) -> int:
    """The pick-up a MIDI file written by rlcomposer declares at its start (0 when none)."""
    for message in _start_messages(midi):
        if message.type == "text" and message.text.startswith(MIDI_PICKUP_TEXT):
            value = message.text[len(MIDI_PICKUP_TEXT):].strip()
            if not value.isdigit():
                raise MelodyError(f"the MIDI file's pick-up {value!r} is not a number of steps", "invalid")
            return int(value)
    return 0


def stream_pickup_steps(part, metre: Metre) -> int:
    """The pick-up of a music21 stream: the length of an incomplete first measure (0 when
    the first measure is full or the stream has no measures)."""
    from music21 import stream

    measures = list(part.recurse().getElementsByClass(stream.Measure))
    if len(measures) < 2:
        return 0
    first = measures[0]
    length = round(float(measures[1].offset - first.offset) * STEPS_PER_QUARTER) \
        if measures[1].offset > first.offset else round(float(first.duration.quarterLength) * STEPS_PER_QUARTER)
    return length if 0 < length < metre.steps_per_bar else 0


def _midi_meta(message, metre: Metre, key: Key) -> tuple[Metre, Key]:
    try:
        if message.type == "time_signature":
            return parse_metre(f"{message.numerator}/{message.denominator}"), key
        if message.type == "key_signature":
            name = message.key
            minor = name.endswith("m")
            tonic = name[:-1] if minor else name
            return metre, parse_key(tonic, "minor" if minor else "major")
        if message.text.startswith(MIDI_KEY_TEXT):
            tonic, _, mode = message.text[len(MIDI_KEY_TEXT):].partition(" ")
            return metre, parse_key(tonic, mode)
    except MetreError as error:
        raise MelodyError(f"the MIDI file's time signature: {error}", "metre") from None
    except KeyNameError as error:
        raise MelodyError(f"the MIDI file's key: {error}", "invalid") from None
    return metre, key


def engraving_clef(melody):
    """The clef to engrave ``melody`` with: always treble; the ottava treble
    (``Treble8vbClef``, sounding an octave below the written notes) when its median
    pitch is below :data:`LOW_MELODY_MEDIAN_PITCH` (C4), never a bass clef."""
    from music21 import clef

    pitches = sorted(p for p, _, _ in melody.notes())
    if pitches and pitches[len(pitches) // 2] < LOW_MELODY_MEDIAN_PITCH:
        return clef.Treble8vbClef()
    return clef.TrebleClef()


LOW_MELODY_MEDIAN_PITCH = 60
"""A melody whose median pitch is below this (C4) is engraved in the ottava treble clef."""


def make_pickup_measure(part, padding_quarters: float) -> None:
    """Turn the first measure of ``part`` (which starts with a placeholder rest of
    ``padding_quarters``) into an incomplete measure 0 holding the pick-up only."""
    from music21 import note, stream

    measures = list(part.getElementsByClass(stream.Measure))
    first = measures[0]
    placeholder = next(r for r in first.notesAndRests if isinstance(r, note.Rest))
    first.remove(placeholder)
    for element in list(first.notesAndRests):
        first.setElementOffset(element, element.offset - padding_quarters)
    first.paddingLeft = padding_quarters
    first.number = 0
    first.showNumber = stream.enums.ShowNumber.NEVER  # MusicXML implicit="yes": a pick-up, not bar 1
    for number, measure in enumerate(measures[1:], start=1):
        measure.number = number
        part.setElementOffset(measure, measure.offset - padding_quarters)
    first.duration.quarterLength = first.highestTime
    last = measures[-1]
    if len(measures) > 1 and last.highestTime < last.barDuration.quarterLength:
        # an unfinished last bar (often the pick-up's complement) stays as it is: no rest is added
        last.paddingRight = last.barDuration.quarterLength - last.highestTime


__all__ = [
    "LOW_MELODY_MEDIAN_PITCH", "MIDI_KEY_TEXT", "MIDI_PICKUP_TEXT", "declared_metre_and_key", "engraving_clef", "key_from_sharps",
    "make_pickup_measure", "midi_key_name", "midi_pickup_steps", "midi_signature", "stream_metre_and_key", "stream_notes",
    "stream_pickup_steps",
]
