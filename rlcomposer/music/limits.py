"""Reading melody files within named limits: any bytes end in a melody or a one-line MelodyError.

A melody file may come from anyone, so every reader here checks the named
limits below *before* it allocates: the file's size
(``MAX_MELODY_FILE_BYTES``), a melody's length (``MAX_MELODY_STEPS``), a MIDI
file's messages (``MAX_MIDI_EVENTS``) and times (``MAX_MIDI_TICKS``), and an
``.mxl`` archive's unpacked size. Whatever the parsers underneath raise
(mido, music21, the JSON and XML readers, zipfile) becomes a
:class:`~rlcomposer.music.melody.MelodyError` naming the reason. ABC
(:mod:`rlcomposer.music.abc_reading`) is read within the same file size and melody
length, the length checked note by note as the tune is read.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from rlcomposer.music.tokens import STEPS_PER_QUARTER, VOCAB_SIZE, MelodyError

# MAX_BARS (32, from rlcomposer.music.metre): the longest melody generation, tuning and the
# environment make, in bars of its metre
MAX_MELODY_STEPS = 4096
"""Longest melody a file may hold, in sixteenth steps (256 bars of 4/4)."""
MAX_MIDI_TICKS = 100_000_000
"""Latest time, in ticks, a MIDI track may reach."""
MAX_MIDI_EVENTS = 50_000
"""Most messages (all tracks together) a MIDI file may hold (256 bars of sixteenths need 8,192 notes)."""
MAX_MELODY_FILE_BYTES = 4 * 1024 * 1024
"""Largest melody file (JSON, MIDI, MusicXML, ABC; an .mxl archive's unpacked score too) read, in bytes."""

MXL_CONTAINER = "META-INF/container.xml"


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_MELODY_FILE_BYTES:
        raise MelodyError(f"{what} of {len(data):,} bytes is larger than the limit of "
                          f"{MAX_MELODY_FILE_BYTES:,} bytes", "too-large")


def check_steps(num_steps: int, what: str = "the melody") -> None:
    if num_steps > MAX_MELODY_STEPS:
        raise MelodyError(f"{what} is {num_steps:,} sixteenth steps long, more than the limit of "
                          f"{MAX_MELODY_STEPS:,}", "too-long")


def read_melody_file(path: Path) -> bytes:
    """The bytes of a melody file, refused (before reading) when larger than the limit."""
    try:
        size = path.stat().st_size
        if size > MAX_MELODY_FILE_BYTES:
            raise MelodyError(f"{path}: {size:,} bytes is larger than the limit of "
                              f"{MAX_MELODY_FILE_BYTES:,} bytes for a melody file", "too-large")
        return path.read_bytes()
    except OSError as error:
        raise MelodyError(f"{path}: {error.strerror or _first_line(error)}", "missing") from None


# ------------------------------------------------------------------------- JSON
def read_json(text: str | bytes) -> Any:
    """Parsed JSON of a melody file (size-checked; deep nesting and huge numbers refused)."""
    if isinstance(text, bytes):
        check_size(text, "the JSON")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MelodyError("not a text file (not UTF-8)", "malformed") from None
    if not isinstance(text, str):
        raise MelodyError("melody JSON must be text", "malformed")
    check_size(text.encode("utf-8", errors="replace"), "the JSON")
    try:
        return json.loads(text)
    except RecursionError:
        raise MelodyError("malformed JSON: nested too deeply", "malformed") from None
    except ValueError as error:  # JSONDecodeError, and Python's limit on digits of an integer
        raise MelodyError(f"malformed JSON: {str(error).splitlines()[0]}", "malformed") from None


def check_json_tokens(tokens: Any) -> list[int]:
    """``tokens`` of a melody JSON: a list of integers (not true / false) in the vocabulary, not too many."""
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise MelodyError("melody JSON 'tokens' must be a list of integers")
    check_steps(len(tokens), "melody JSON 'tokens'")
    bad = next((t for t in tokens if not 0 <= t < VOCAB_SIZE), None)
    if bad is not None:
        shown = str(bad) if abs(bad) < 10**12 else f"{str(bad)[:12]}..."
        raise MelodyError(f"token {shown} is outside the vocabulary 0..{VOCAB_SIZE - 1}", "pitch-range")
    return tokens


# ------------------------------------------------------------------------- MIDI
def read_midi(data: bytes):
    """A ``mido.MidiFile`` of ``data``: size, ticks per beat and message count checked."""
    import mido

    if not isinstance(data, (bytes, bytearray)):
        raise MelodyError("a MIDI file must be bytes", "malformed")
    check_size(data, "the MIDI file")
    possible = _midi_track_bytes(bytes(data)) // 2  # a message takes at least 2 bytes (delta-time, data)
    if possible > MAX_MIDI_EVENTS:
        raise MelodyError(f"the MIDI file's tracks could hold {possible:,} messages, more than the limit of "
                          f"{MAX_MIDI_EVENTS:,}", "too-large")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as error:  # mido raises OSError, EOFError, KeyError, ValueError...
        raise MelodyError(f"not a readable MIDI file: {_first_line(error)}", "malformed") from None
    if not isinstance(midi.ticks_per_beat, int) or midi.ticks_per_beat <= 0 or midi.ticks_per_beat >= 0x8000:
        raise MelodyError(f"not a readable MIDI file: ticks per beat {midi.ticks_per_beat} "
                          "(must be 1 to 32767; SMPTE time is not supported)", "malformed")
    events = sum(len(track) for track in midi.tracks)
    if events > MAX_MIDI_EVENTS:
        raise MelodyError(f"the MIDI file has {events:,} messages, more than the limit of "
                          f"{MAX_MIDI_EVENTS:,}", "too-large")
    return midi


def _midi_track_bytes(data: bytes) -> int:
    """Bytes in the ``MTrk`` chunks of a MIDI file, read from the chunk headers alone."""
    position, total = 0, 0
    while position + 8 <= len(data):
        length = int.from_bytes(data[position + 4:position + 8], "big")
        if data[position:position + 4] == b"MTrk":
            total += min(length, len(data) - position - 8)
        position += 8 + length
    return total


def midi_notes(midi) -> tuple[list[tuple[int, int, int]], int]:
    """``(start_step, end_step, pitch)`` of every note (drums skipped) and the last tick of any track.

    Refuses a track whose time passes ``MAX_MIDI_TICKS`` or ``MAX_MELODY_STEPS`` as it is read.
    """
    tick = midi.ticks_per_beat / STEPS_PER_QUARTER
    max_ticks = min(MAX_MIDI_TICKS, int((MAX_MELODY_STEPS + 0.5) * tick))
    raw: list[tuple[int, int, int]] = []
    end_tick = 0
    for track in midi.tracks:
        now = 0
        sounding: dict[tuple[int, int], int] = {}
        for message in track:
            now += message.time
            if now > max_ticks:
                raise MelodyError(f"the MIDI file reaches tick {now:,} ({now / midi.ticks_per_beat:,.0f} "
                                  f"beats), past the limit of {max_ticks:,} ticks ({MAX_MELODY_STEPS:,} "
                                  "sixteenth steps)", "too-long")
            if message.type == "note_on" and message.velocity > 0 and message.channel != 9:
                sounding[(message.channel, message.note)] = now
            elif message.type in ("note_off", "note_on") and message.channel != 9:
                start = sounding.pop((message.channel, message.note), None)
                if start is not None:
                    raw.append((round(start / tick), round(now / tick), message.note))
        end_tick = max(end_tick, now)
    return raw, end_tick


# --------------------------------------------------------------------- MusicXML
def unpack_mxl(data: bytes) -> bytes:
    """The score of a compressed MusicXML (``.mxl``) archive, refused past the size limit unpacked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
        root = None
        if MXL_CONTAINER in names:
            container = _read_member(archive, MXL_CONTAINER)
            from xml.etree import ElementTree

            for element in ElementTree.fromstring(container).iter():
                if element.tag.rsplit("}", 1)[-1] == "rootfile" and element.get("full-path"):
                    root = element.get("full-path")
                    break
        if root is None or root not in names:
            root = next((n for n in names if n.lower().endswith((".xml", ".musicxml"))
                         and not n.startswith("META-INF/")), None)
        if root is None:
            raise MelodyError("not a readable MusicXML file: the .mxl archive holds no score", "malformed")
        return _read_member(archive, root)
    except MelodyError:
        raise
    except Exception as error:  # zipfile.BadZipFile, zlib errors, XML errors in the container
        raise MelodyError(f"not a readable MusicXML file: {_first_line(error)}", "malformed") from None


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > MAX_MELODY_FILE_BYTES:
        raise MelodyError(f"the .mxl archive's {name} unpacks to {info.file_size:,} bytes, more than the "
                          f"limit of {MAX_MELODY_FILE_BYTES:,}", "too-large")
    with archive.open(info) as member:
        content = member.read(MAX_MELODY_FILE_BYTES + 1)
    if len(content) > MAX_MELODY_FILE_BYTES:
        raise MelodyError(f"the .mxl archive's {name} unpacks to more than {MAX_MELODY_FILE_BYTES:,} bytes",
                          "too-large")
    return content


def read_musicxml(data: bytes):
    """A music21 score of MusicXML bytes (plain, or an ``.mxl`` zip archive)."""
    from music21 import converter

    if not isinstance(data, (bytes, bytearray)):
        raise MelodyError("a MusicXML file must be bytes", "malformed")
    check_size(data, "the MusicXML file")
    if bytes(data[:4]) == b"PK\x03\x04":
        data = unpack_mxl(bytes(data))
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MelodyError("not a readable MusicXML file: not UTF-8 text", "malformed") from None
    if "<!ENTITY" in text:
        raise MelodyError("not a readable MusicXML file: entity declarations are not accepted", "malformed")
    check_musicxml_numbers(text)
    try:
        return converter.parseData(text, format="musicxml")
    except RecursionError:
        raise MelodyError("not a readable MusicXML file: nested too deeply", "malformed") from None
    except Exception as error:
        raise MelodyError(f"not a readable MusicXML file: {_first_line(error)}", "malformed") from None


MAX_TIME_SIGNATURE_BEATS = 64
"""Largest numerator of a time signature (music21's accent weights take minutes past a few hundred)."""
MAX_XML_NUMBER = 10**6
"""Largest whole number in a MusicXML element (durations, divisions, octaves, ...)."""
_WHOLE_NUMBER_TAGS = {"divisions", "duration", "octave", "alter", "fifths", "actual-notes", "normal-notes",
                      "beat-type", "staves", "voice", "dots", "tremolo"}


def check_musicxml_numbers(text: str) -> None:
    """Refuse numbers music21 would take minutes or gigabytes over, before it parses anything.

    Time signatures up to ``MAX_TIME_SIGNATURE_BEATS`` beats (of 1, 2, 4, ... 64), positive
    divisions, and whole numbers within ``MAX_XML_NUMBER`` in the elements that size a score.
    """
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(text)
    except RecursionError:
        raise MelodyError("not a readable MusicXML file: nested too deeply", "malformed") from None
    except ElementTree.ParseError as error:
        raise MelodyError(f"not a readable MusicXML file: {_first_line(error)}", "malformed") from None
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
        content = (element.text or "").strip()
        if tag == "beats":
            try:
                beats = sum(int(part) for part in content.split("+"))
            except ValueError:
                raise MelodyError(f"not a readable MusicXML file: time signature beats '{content[:20]}'",
                                  "malformed") from None
            if not 1 <= beats <= MAX_TIME_SIGNATURE_BEATS:
                raise MelodyError(f"a time signature of {beats} beats is outside 1..{MAX_TIME_SIGNATURE_BEATS}",
                                  "malformed")
        elif tag in _WHOLE_NUMBER_TAGS and content:
            try:
                value = float(content)
            except ValueError:
                raise MelodyError(f"not a readable MusicXML file: <{tag}> '{content[:20]}' is not a number",
                                  "malformed") from None
            if not abs(value) <= MAX_XML_NUMBER:  # NaN too
                raise MelodyError(f"<{tag}> {content[:20]} is beyond the limit of {MAX_XML_NUMBER:,}", "malformed")
            if tag == "beat-type" and value not in (1, 2, 4, 8, 16, 32, 64):
                raise MelodyError(f"a time signature's beat type {content[:20]} is not 1, 2, 4, ... 64", "malformed")
            if tag in ("divisions", "actual-notes", "normal-notes") and value <= 0:
                raise MelodyError(f"<{tag}> {content[:20]} must be positive", "malformed")


def check_stream_length(score) -> None:
    """Refuse a music21 score longer than ``MAX_MELODY_STEPS`` before it is put on the grid."""
    try:
        quarters = float(score.highestTime)
    except Exception as error:
        raise MelodyError(f"not a readable MusicXML file: {_first_line(error)}", "malformed") from None
    if not quarters == quarters or quarters * STEPS_PER_QUARTER > MAX_MELODY_STEPS:  # NaN or too long
        raise MelodyError(f"the score lasts {quarters:g} quarter notes, more than the limit of "
                          f"{MAX_MELODY_STEPS // STEPS_PER_QUARTER:,}", "too-long")
