"""The melody: the one value object every part of rlcomposer passes around.

Encoding (the Magenta melody encoding used by RL Tuner): a grid of sixteenth
notes, one token per step.

* ``REST`` (0): silence starts on this step.
* ``HOLD`` (1): keep sounding the previous note; after a ``REST`` or at step 0
  it continues the silence.
* ``pitch_token(p)`` (2 + p - 48): a note of MIDI pitch ``p`` starts on this step,
  for ``p`` in ``MIN_PITCH..MAX_PITCH`` (48..84, C3..C6).

A quarter note is ``STEPS_PER_QUARTER`` = 4 steps. A melody knows its
:class:`~rlcomposer.music.metre.Metre` (default 4/4: a bar of ``STEPS_PER_BAR`` =
16 steps; a 6/8 bar is 12 steps) and its :class:`~rlcomposer.music.keys.Key`
(default C major), and writes them as time and key signatures into MusicXML and
MIDI; :meth:`Melody.notes` stays in quarter notes whatever the metre.

Several token sequences can sound the same (``REST REST`` and ``REST HOLD``; a
leading ``HOLD`` and a leading ``REST``). :meth:`Melody.canonical` picks one:
every silence starts with ``REST`` and continues with ``HOLD``. Conversions *to*
tokens (from notes, streams, MIDI, MusicXML, JSON of notes) give canonical tokens,
so ``Melody.from_notes(m.notes(), m.num_steps) == m.canonical()``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.audio import DEFAULT_TEMPO_BPM, render_wav_bytes
from rlcomposer.music.keys import DEFAULT_KEY, Key, KeyNameError, parse_key
from rlcomposer.music.metre import DEFAULT_METRE, MAX_BARS, Metre, MetreError, parse_metre  # noqa: F401

REST = 0
HOLD = 1
MIN_PITCH = 48
MAX_PITCH = 84
NUM_SPECIAL_TOKENS = 2
VOCAB_SIZE = NUM_SPECIAL_TOKENS + MAX_PITCH - MIN_PITCH + 1  # 39
STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16
"""Steps in a bar of the default metre, 4/4 (``melody.metre.steps_per_bar`` in general)."""
JSON_FORMAT = "rlcomposer.melody"  # the file format's name (kept when the module moved)
JSON_VERSION = 1
MIDI_TICKS_PER_QUARTER = 480
# limits, checked before anything is allocated (rlcomposer.music.limits explains them)
# MAX_BARS (32, from rlcomposer.music.metre): the longest melody generation, tuning and the
# environment make, in bars of its metre
MAX_MELODY_STEPS = 4096
"""Longest melody a file may hold, in sixteenth steps (256 bars of 4/4)."""
MAX_MIDI_TICKS = 100_000_000
"""Latest time, in ticks, a MIDI track may reach."""
MAX_MIDI_EVENTS = 50_000
"""Most messages (all tracks together) a MIDI file may hold (256 bars of sixteenths need 8,192 notes)."""
MAX_MELODY_FILE_BYTES = 4 * 1024 * 1024
"""Largest melody file (JSON, MIDI, MusicXML; an .mxl archive's unpacked score too) read, in bytes."""

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


def _grid_steps(beats: float, what: str) -> int:
    steps = float(beats) * STEPS_PER_QUARTER
    rounded = round(steps)
    if abs(steps - rounded) > 1e-6:
        raise MelodyError(f"{what} {float(beats):g} beats is off the sixteenth-note grid", "off-grid")
    return int(rounded)


@dataclass(frozen=True, eq=False)
class Melody:
    """A monophonic melody on the sixteenth-note grid.

    ``tokens`` is a 1-D integer array of token ids (see the module docstring);
    ``metadata`` carries provenance (title, source, model, seed, ...) as plain
    JSON values; ``metre`` and ``key`` say how to bar and spell it. Two melodies
    are equal when their tokens, metre and key are equal.
    """

    tokens: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    metre: Metre = DEFAULT_METRE
    key: Key = DEFAULT_KEY

    def __post_init__(self) -> None:
        tokens = np.asarray(self.tokens)
        if tokens.ndim != 1 or tokens.size == 0:
            raise MelodyError("a melody needs a non-empty 1-D sequence of tokens", "empty")
        if not np.issubdtype(tokens.dtype, np.integer):
            if not np.all(np.equal(np.mod(tokens, 1), 0)):
                raise MelodyError("melody tokens must be integers", "invalid")
        if tokens.min() < 0 or tokens.max() >= VOCAB_SIZE:
            bad = int(tokens[(tokens < 0) | (tokens >= VOCAB_SIZE)][0])
            raise MelodyError(
                f"token {bad} is outside the vocabulary 0..{VOCAB_SIZE - 1}", "pitch-range"
            )
        tokens = tokens.astype(np.int16)
        tokens.setflags(write=False)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "metre", parse_metre(self.metre))
        if not isinstance(self.key, Key):
            raise MelodyError(f"a melody's key must be a Key, got {self.key!r}", "invalid")

    # ------------------------------------------------------------------ basics
    @property
    def num_steps(self) -> int:
        """Length in sixteenth-note steps."""
        return int(self.tokens.size)

    @property
    def num_bars(self) -> float:
        """Length in bars of its metre (fractional if the melody is not whole bars)."""
        return self.num_steps / self.metre.steps_per_bar

    @property
    def steps_per_bar(self) -> int:
        return self.metre.steps_per_bar

    @property
    def duration_beats(self) -> float:
        """Length in quarter notes."""
        return self.num_steps / STEPS_PER_QUARTER

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Melody) and np.array_equal(self.tokens, other.tokens)
                and self.metre == other.metre and self.key == other.key)

    def __hash__(self) -> int:
        return hash((self.tokens.tobytes(), self.metre, self.key))

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        head = " ".join(token_name(int(t)) for t in self.tokens[:8])
        more = " ..." if self.num_steps > 8 else ""
        where = "" if (self.metre, self.key) == (DEFAULT_METRE, DEFAULT_KEY) else \
            f", {self.metre.name}, {self.key.name}"
        return f"Melody({self.num_steps} steps{where}: {head}{more})"

    # ------------------------------------------------------------- tokens/notes
    @classmethod
    def from_tokens(cls, tokens: Iterable[int], metadata: dict[str, Any] | None = None,
                    metre: Metre | str | None = None, key: Key | None = None) -> Melody:
        return cls(np.asarray(list(tokens) if not isinstance(tokens, np.ndarray) else tokens),
                   dict(metadata or {}), parse_metre(metre), key or DEFAULT_KEY)

    def notes(self) -> list[Note]:
        """The sounding notes as ``(midi_pitch, onset_beats, duration_beats)``.

        Beats are quarter notes from the start of the melody (step 0 is 0.0).
        """
        result: list[Note] = []
        current_pitch: int | None = None
        start = 0
        for step, token in enumerate(self.tokens.tolist()):
            if token == HOLD:
                continue
            if current_pitch is not None:
                result.append(_note(current_pitch, start, step))
            current_pitch = token_pitch(token)
            start = step
        if current_pitch is not None:
            result.append(_note(current_pitch, start, self.num_steps))
        return result

    @classmethod
    def from_notes(
        cls,
        notes: Iterable[Sequence[float]],
        num_steps: int | None = None,
        metadata: dict[str, Any] | None = None,
        metre: Metre | str | None = None,
        key: Key | None = None,
    ) -> Melody:
        """Build canonical tokens from ``(pitch, onset_beats, duration_beats)`` notes.

        ``num_steps`` defaults to the end of the last note. Raises
        :class:`MelodyError` for overlapping notes, notes off the grid, pitches
        out of range, or notes past ``num_steps``.
        """
        placed: list[tuple[int, int, int]] = []
        for pitch, onset, duration in notes:
            if int(pitch) != pitch:
                raise MelodyError(f"pitch {pitch} is not a whole MIDI number", "pitch-range")
            start = _grid_steps(onset, "onset")
            length = _grid_steps(duration, "duration")
            if start < 0:
                raise MelodyError(f"note onset {onset} is negative", "invalid")
            if length <= 0:
                raise MelodyError(f"note at beat {onset:g} has no duration", "invalid")
            placed.append((start, start + length, pitch_token(int(pitch))))
        placed.sort()
        end = placed[-1][1] if placed else 0
        if num_steps is None:
            num_steps = end
        if num_steps <= 0:
            raise MelodyError("a melody needs at least one step", "empty")
        if end > num_steps:
            raise MelodyError(
                f"a note ends at step {end}, after the melody's {num_steps} steps", "invalid"
            )
        tokens = np.full(num_steps, HOLD, dtype=np.int16)
        previous_end = 0
        for start, stop, token in placed:
            if start < previous_end:
                raise MelodyError(
                    f"notes overlap at beat {start / STEPS_PER_QUARTER:g}: a melody is monophonic",
                    "chord",
                )
            if start > previous_end:
                tokens[previous_end] = REST
            tokens[start] = token
            previous_end = stop
        if previous_end < num_steps:
            tokens[previous_end] = REST
        return cls(tokens, dict(metadata or {}), parse_metre(metre), key or DEFAULT_KEY)

    def canonical(self) -> Melody:
        """The same sound with canonical tokens (silences are ``REST HOLD ...``)."""
        return Melody.from_notes(self.notes(), self.num_steps, self.metadata, self.metre, self.key)

    def transpose(self, semitones: int, key: Key | None = None) -> Melody:
        """Shift every pitch (and name the result's ``key``, default: unchanged);
        raises :class:`MelodyError` if a pitch leaves the range."""
        notes = [(p + semitones, o, d) for p, o, d in self.notes()]
        return Melody.from_notes(notes, self.num_steps, self.metadata, self.metre, key or self.key)

    def in_key(self, key: Key) -> Melody:
        """The melody moved from its key's tonic to ``key``'s (the same mode): by -5..+6
        semitones, or an octave further if that keeps every pitch inside the range.
        Raises :class:`MelodyError` for another mode (transposing cannot change it) or
        when no octave fits."""
        if key.mode != self.key.mode:
            raise MelodyError(f"a melody in {self.key.mode} cannot be moved to {key.name}: "
                              f"transposing keeps the mode (make it in {key.mode})", "invalid")
        shift = (key.tonic_pitch_class - self.key.tonic_pitch_class) % 12
        shift = shift - 12 if shift > 6 else shift
        pitches = [p for p, _, _ in self.notes()] or [MIN_PITCH]
        for candidate in sorted((shift, shift - 12, shift + 12), key=abs):
            if MIN_PITCH <= min(pitches) + candidate and max(pitches) + candidate <= MAX_PITCH:
                return self.transpose(candidate, key)
        raise MelodyError(
            f"the melody spans {max(pitches) - min(pitches)} semitones: no octave puts it in "
            f"{key.name} inside MIDI {MIN_PITCH}-{MAX_PITCH}", "pitch-range")

    def with_metadata(self, **updates: Any) -> Melody:
        return Melody(self.tokens, {**self.metadata, **updates}, self.metre, self.key)

    def with_metre(self, metre: Metre | str, key: Key | None = None) -> Melody:
        """The same tokens read in another metre (and key, if given)."""
        return Melody(self.tokens, dict(self.metadata), parse_metre(metre), key or self.key)

    # --------------------------------------------------------------------- JSON
    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "steps_per_bar": self.metre.steps_per_bar,
            "metre": self.metre.name,
            "key": {"tonic": self.key.tonic, "mode": self.key.mode},
            "num_steps": self.num_steps,
            "tokens": self.tokens.tolist(),
            "notes": [list(n) for n in self.notes()],
            "metadata": self.metadata,
        }

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys): equal melodies give equal bytes."""
        return json.dumps(self.to_json_dict(), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Melody:
        from rlcomposer.music.limits import check_json_tokens

        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise MelodyError(f"not an rlcomposer melody (expected format '{JSON_FORMAT}')")
        if data.get("version") != JSON_VERSION:
            raise MelodyError(f"unsupported melody JSON version {data.get('version')!r}")
        tokens = check_json_tokens(data.get("tokens"))
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise MelodyError("melody JSON 'metadata' must be an object")
        metre, key = _declared_metre_and_key(data)
        melody = cls(np.asarray(tokens, dtype=np.int64), metadata, metre, key)
        declared = data.get("steps_per_bar", metre.steps_per_bar)
        if declared != metre.steps_per_bar:
            raise MelodyError(
                f"its notes are barred in {declared!r} steps, but a bar of {metre.name} is "
                f"{metre.steps_per_bar} steps", "metre")
        return melody

    @classmethod
    def from_json(cls, text: str | bytes) -> Melody:
        from rlcomposer.music.limits import read_json

        return cls.from_json_dict(read_json(text))

    # ------------------------------------------------------------------ music21
    def to_stream(self, tempo_bpm: float = DEFAULT_TEMPO_BPM, title: str | None = None):
        """A ``music21.stream.Score`` with one part in the melody's metre and key.

        Always a treble clef: the ottava treble (``Treble8vbClef``) when the
        melody lies low (:func:`engraving_clef`), never a bass clef.
        """
        from music21 import key, metadata, meter, note, stream, tempo

        part = stream.Part()
        part.append(engraving_clef(self))
        part.append(meter.TimeSignature(self.metre.name))
        part.append(key.Key(self.key.tonic.replace("b", "-"), self.key.mode))
        part.append(tempo.MetronomeMark(number=tempo_bpm))
        cursor = 0
        for pitch, onset, duration in self.notes():
            start = round(onset * STEPS_PER_QUARTER)
            if start > cursor:
                part.append(note.Rest(quarterLength=(start - cursor) / STEPS_PER_QUARTER))
            sounding = note.Note(pitch, quarterLength=duration)
            if sounding.pitch.accidental is not None and sounding.pitch.accidental.alter == 0:
                sounding.pitch.accidental = None  # else music21 prints stray naturals in the score
            part.append(sounding)
            cursor = start + round(duration * STEPS_PER_QUARTER)
        if cursor < self.num_steps:
            part.append(note.Rest(quarterLength=(self.num_steps - cursor) / STEPS_PER_QUARTER))
        score = stream.Score()
        score.insert(0, metadata.Metadata(title=title or self.metadata.get("title", "Melody")))
        score.insert(0, part)
        return score

    @classmethod
    def from_stream(cls, score, metadata: dict[str, Any] | None = None) -> Melody:
        """Tokens from a monophonic music21 stream (first part of a score).

        Tied notes of the same pitch merge and grace notes are dropped (see
        :func:`stream_notes`). Raises :class:`MelodyError` for chords, notes off
        the grid and pitches out of range.
        """
        from music21 import stream

        if isinstance(score, stream.Score) and score.parts:
            score = score.parts[0]
        notes, num_steps = stream_notes(score)
        if not notes and not num_steps:
            raise MelodyError("the stream has no notes", "empty")
        metre, key = stream_metre_and_key(score)
        return cls.from_notes(
            [(p, s / STEPS_PER_QUARTER, n / STEPS_PER_QUARTER) for p, s, n in notes],
            num_steps, metadata, metre, key,
        )

    # --------------------------------------------------------------------- MIDI
    def to_midi_bytes(self, tempo_bpm: float = DEFAULT_TEMPO_BPM, program: int = 0) -> bytes:
        """A type-0 Standard MIDI File (4/4, the given tempo and GM program)."""
        import mido

        tick = MIDI_TICKS_PER_QUARTER // STEPS_PER_QUARTER
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=str(self.metadata.get("title", "Melody"))))
        track.append(mido.MetaMessage("time_signature", numerator=self.metre.numerator,
                                      denominator=self.metre.denominator))
        track.append(mido.MetaMessage("key_signature", key=midi_key_name(self.key)))
        track.append(mido.MetaMessage("text", text=f"{MIDI_KEY_TEXT}{self.key.name}"))
        track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
        track.append(mido.Message("program_change", program=program, channel=0))
        now = 0
        for pitch, onset, duration in self.notes():
            start = round(onset * STEPS_PER_QUARTER) * tick
            stop = start + round(duration * STEPS_PER_QUARTER) * tick
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=start - now))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=stop - start))
            now = stop
        track.append(mido.MetaMessage("end_of_track", time=self.num_steps * tick - now))
        midi = mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS_PER_QUARTER)
        midi.tracks.append(track)
        buffer = io.BytesIO()
        midi.save(file=buffer)
        return buffer.getvalue()

    @classmethod
    def from_midi_bytes(cls, data: bytes, metadata: dict[str, Any] | None = None) -> Melody:
        """Read a MIDI file, quantised to the sixteenth grid.

        Notes from all tracks and channels are merged (drums on channel 10 are
        ignored); where notes overlap, the highest of notes starting together is
        kept and a later onset cuts the sounding note short.
        """
        from rlcomposer.music.limits import midi_notes, read_midi

        midi = read_midi(data)
        tick = midi.ticks_per_beat / STEPS_PER_QUARTER
        raw, end_tick = midi_notes(midi)
        metre, key = _midi_signature(midi)
        if not raw and round(end_tick / tick) == 0:
            raise MelodyError("the MIDI file has no notes", "empty")
        raw.sort(key=lambda n: (n[0], -n[2]))
        kept: list[list[int]] = []
        for start, stop, pitch in raw:
            if kept and kept[-1][0] == start:
                continue  # a lower note starting together with a kept one
            if kept and kept[-1][1] > start:
                kept[-1][1] = start
            kept.append([start, max(stop, start + 1), pitch])
        num_steps = max([round(end_tick / tick)] + [stop for _, stop, _ in kept])
        notes = [(p, s / STEPS_PER_QUARTER, (e - s) / STEPS_PER_QUARTER) for s, e, p in kept]
        return cls.from_notes(notes, num_steps, metadata, metre, key)

    # ----------------------------------------------------------------- MusicXML
    def to_musicxml_bytes(self, tempo_bpm: float = DEFAULT_TEMPO_BPM) -> bytes:
        """MusicXML (uncompressed) that opens in MuseScore and other notation programs."""
        from music21.musicxml.m21ToXml import GeneralObjectExporter

        return GeneralObjectExporter(self.to_stream(tempo_bpm)).parse()

    @classmethod
    def from_musicxml_bytes(cls, data: bytes, metadata: dict[str, Any] | None = None) -> Melody:
        """Read MusicXML, uncompressed or a compressed ``.mxl`` archive (its score is unpacked)."""
        from rlcomposer.music.limits import check_stream_length, read_musicxml

        score = read_musicxml(data)
        check_stream_length(score)
        try:
            return cls.from_stream(score, metadata)
        except MelodyError:
            raise
        except Exception as error:  # music21 objects a parse accepted but that do not convert
            raise MelodyError(f"not a readable MusicXML file: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}", "malformed") from None

    # -------------------------------------------------------------------- files
    def save(self, path: str | Path, tempo_bpm: float = DEFAULT_TEMPO_BPM) -> Path:
        """Write by suffix: ``.json``, ``.mid``/``.midi``, ``.musicxml``/``.xml``, ``.wav``."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            path.write_text(self.to_json(), encoding="utf-8")
        elif suffix in (".mid", ".midi"):
            path.write_bytes(self.to_midi_bytes(tempo_bpm))
        elif suffix in (".musicxml", ".xml"):
            path.write_bytes(self.to_musicxml_bytes(tempo_bpm))
        elif suffix == ".wav":
            path.write_bytes(render_wav_bytes(self, tempo_bpm=tempo_bpm))
        else:
            raise MelodyError(f"{path}: unknown melody file type '{suffix}'", "malformed")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Melody:
        """Read a ``.json``, ``.mid``/``.midi`` or ``.musicxml``/``.xml``/``.mxl`` file."""
        from rlcomposer.music.limits import read_melody_file

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".mid", ".midi", ".musicxml", ".xml", ".mxl"):
            raise MelodyError(f"{path}: unknown melody file type '{suffix}'", "malformed")
        data = read_melody_file(path)
        try:
            if suffix == ".json":
                return cls.from_json(data)
            if suffix in (".mid", ".midi"):
                return cls.from_midi_bytes(data, {"source": path.name})
            return cls.from_musicxml_bytes(data, {"source": path.name})
        except MelodyError as error:
            raise MelodyError(f"{path}: {error}", error.reason) from None


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
            start = _grid_steps(element.offset, "a note at")
            length = _grid_steps(element.duration.quarterLength, "a duration of")
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
        end_steps = _grid_steps(flat.highestTime, "the end at")
    end = max([end_steps] + [s + n for _, s, n in notes])
    return [(m, s, n) for m, s, n in notes], end


def _declared_metre_and_key(data: dict[str, Any]) -> tuple[Metre, Key]:
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


def _midi_signature(midi) -> tuple[Metre, Key]:
    """The time signature and key a MIDI file declares at its start (4/4, C major when none)."""
    metre, key = DEFAULT_METRE, DEFAULT_KEY
    for track in midi.tracks:
        now = 0
        for message in track:
            now += message.time
            if now > 0:
                break
            if message.type in ("time_signature", "key_signature", "text"):
                metre, key = _midi_meta(message, metre, key)
    return metre, key


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


def engraving_clef(melody: Melody):
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


def _note(pitch: int, start_step: int, stop_step: int) -> Note:
    return (pitch, start_step / STEPS_PER_QUARTER, (stop_step - start_step) / STEPS_PER_QUARTER)


def random_melody(rng: np.random.Generator, num_steps: int = 64,
                  metre: Metre | str | None = None, key: Key | None = None) -> Melody:
    """Uniformly random tokens (the ``random`` model of ``evaluate``)."""
    return Melody(rng.integers(0, VOCAB_SIZE, size=num_steps), {}, parse_metre(metre),
                  key or DEFAULT_KEY)


def whole_bars(num_steps: int, steps_per_bar: int = STEPS_PER_BAR) -> int:
    """Round a length up to whole bars (of ``steps_per_bar`` steps, default 4/4's 16)."""
    return int(math.ceil(num_steps / steps_per_bar) * steps_per_bar)
