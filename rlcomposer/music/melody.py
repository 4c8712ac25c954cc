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

A melody may open with a pick-up (an anacrusis): ``pickup_steps`` steps before the
first downbeat, a partial bar that is part of no bar count. Token 0 is then the
pick-up's first step, so the files start with its first note; MusicXML writes it
as an incomplete first measure (measure 0), MIDI keeps it in a text event
(:data:`MIDI_PICKUP_TEXT`), JSON in ``pickup_steps``. The metric position of
step ``t`` is ``(t + metric_offset) % steps_per_bar`` (:meth:`Melody.metric_steps`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.music import limits
from rlcomposer.music.abc_notation import write_abc
from rlcomposer.music.abc_reading import read_abc
from rlcomposer.music.audio import DEFAULT_TEMPO_BPM, render_wav_bytes
from rlcomposer.music.keys import DEFAULT_KEY, Key
from rlcomposer.music.limits import (  # noqa: F401 (the limits' old home)
    MAX_MELODY_FILE_BYTES,
    MAX_MELODY_STEPS,
    MAX_MIDI_EVENTS,
    MAX_MIDI_TICKS,
)
from rlcomposer.music.melody_json import (  # noqa: F401 (public here since 0.1)
    JSON_FORMAT,
    JSON_VERSION,
    melody_from_json_dict,
    melody_json_dict,
)
from rlcomposer.music.metre import (  # noqa: F401
    DEFAULT_METRE,
    MAX_BARS,
    Metre,
    MetreError,
    check_pickup_steps,
    parse_metre,
)
from rlcomposer.music.notation import (  # noqa: F401 (public here since 0.1)
    LOW_MELODY_MEDIAN_PITCH,
    MIDI_KEY_TEXT,
    MIDI_PICKUP_TEXT,
    declared_metre_and_key,
    engraving_clef,
    key_from_sharps,
    make_pickup_measure,
    midi_key_name,
    midi_pickup_steps,
    midi_signature,
    stream_metre_and_key,
    stream_notes,
    stream_pickup_steps,
)
from rlcomposer.music.notes import note_events
from rlcomposer.music.tokens import (  # noqa: F401 (the encoding, public here since 0.1)
    HOLD,
    MAX_PITCH,
    MIN_PITCH,
    NUM_SPECIAL_TOKENS,
    REST,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    VOCAB_SIZE,
    MelodyError,
    Note,
    grid_steps,
    pitch_token,
    token_name,
    token_pitch,
    whole_bars,
)

MIDI_TICKS_PER_QUARTER = 480


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
    pickup_steps: int = 0
    """Steps of the pick-up before the first downbeat (0: starts on the downbeat)."""

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
        try:
            pickup = check_pickup_steps(self.pickup_steps, self.metre, tokens.size)
        except MetreError as error:
            raise MelodyError(str(error), "metre") from None
        object.__setattr__(self, "pickup_steps", pickup)

    # ------------------------------------------------------------------ basics
    @property
    def num_steps(self) -> int:
        """Length in sixteenth-note steps."""
        return int(self.tokens.size)

    @property
    def num_bars(self) -> float:
        """Length in bars of its metre after the pick-up (fractional if not whole bars)."""
        return (self.num_steps - self.pickup_steps) / self.metre.steps_per_bar

    @property
    def metric_offset(self) -> int:
        """The position within its bar of step 0 (0 without a pick-up)."""
        return (self.metre.steps_per_bar - self.pickup_steps) % self.metre.steps_per_bar

    def metric_steps(self) -> np.ndarray:
        """Each step's position counted from the downbeat of the bar that holds step 0
        (``% steps_per_bar`` gives the position in the bar; a pick-up's steps fall in bar -1
        after subtracting ``steps_per_bar`` when :attr:`pickup_steps` > 0)."""
        return np.arange(self.num_steps) + self.metric_offset

    @property
    def steps_per_bar(self) -> int:
        return self.metre.steps_per_bar

    @property
    def duration_beats(self) -> float:
        """Length in quarter notes."""
        return self.num_steps / STEPS_PER_QUARTER

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Melody) and np.array_equal(self.tokens, other.tokens)
                and self.metre == other.metre and self.key == other.key
                and self.pickup_steps == other.pickup_steps)

    def __hash__(self) -> int:
        return hash((self.tokens.tobytes(), self.metre, self.key, self.pickup_steps))

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        head = " ".join(token_name(int(t)) for t in self.tokens[:8])
        more = " ..." if self.num_steps > 8 else ""
        where = "" if (self.metre, self.key) == (DEFAULT_METRE, DEFAULT_KEY) else \
            f", {self.metre.name}, {self.key.name}"
        if self.pickup_steps:
            where += f", pick-up {self.pickup_steps} steps"
        return f"Melody({self.num_steps} steps{where}: {head}{more})"

    # ------------------------------------------------------------- tokens/notes
    @classmethod
    def from_tokens(cls, tokens: Iterable[int], metadata: dict[str, Any] | None = None,
                    metre: Metre | str | None = None, key: Key | None = None,
                    pickup_steps: int = 0) -> Melody:
        return cls(np.asarray(list(tokens) if not isinstance(tokens, np.ndarray) else tokens),
                   dict(metadata or {}), parse_metre(metre), key or DEFAULT_KEY, pickup_steps)

    def notes(self) -> list[Note]:
        """The sounding notes as ``(midi_pitch, onset_beats, duration_beats)``.

        Beats are quarter notes from the start of the melody (step 0 is 0.0; with a
        pick-up, the first downbeat is at ``pickup_steps / 4``).
        """
        onsets, pitches, durations = note_events(self.tokens)
        return [(pitch, onset / STEPS_PER_QUARTER, duration / STEPS_PER_QUARTER)
                for pitch, onset, duration in zip(pitches.tolist(), onsets.tolist(), durations.tolist(),
                                                  strict=True)]

    @classmethod
    def from_notes(
        cls,
        notes: Iterable[Sequence[float]],
        num_steps: int | None = None,
        metadata: dict[str, Any] | None = None,
        metre: Metre | str | None = None,
        key: Key | None = None,
        pickup_steps: int = 0,
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
            start = grid_steps(onset, "onset")
            length = grid_steps(duration, "duration")
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
        return cls(tokens, dict(metadata or {}), parse_metre(metre), key or DEFAULT_KEY, pickup_steps)

    def canonical(self) -> Melody:
        """The same sound with canonical tokens (silences are ``REST HOLD ...``)."""
        return Melody.from_notes(self.notes(), self.num_steps, self.metadata, self.metre, self.key,
                                 self.pickup_steps)

    def transpose(self, semitones: int, key: Key | None = None) -> Melody:
        """Shift every pitch (and name the result's ``key``, default: unchanged);
        raises :class:`MelodyError` if a pitch leaves the range."""
        notes = [(p + semitones, o, d) for p, o, d in self.notes()]
        return Melody.from_notes(notes, self.num_steps, self.metadata, self.metre, key or self.key,
                                 self.pickup_steps)

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
        return Melody(self.tokens, {**self.metadata, **updates}, self.metre, self.key, self.pickup_steps)

    def with_metre(self, metre: Metre | str, key: Key | None = None, pickup_steps: int = 0) -> Melody:
        """The same tokens read in another metre (and key, if given), with ``pickup_steps``."""
        return Melody(self.tokens, dict(self.metadata), parse_metre(metre), key or self.key, pickup_steps)

    def with_pickup(self, pickup_steps: int) -> Melody:
        """The same tokens with ``pickup_steps`` steps before the first downbeat."""
        return Melody(self.tokens, dict(self.metadata), self.metre, self.key, pickup_steps)

    def without_leading_silence(self) -> Melody:
        """The melody from its first note: leading silence inside the first bar is dropped and
        what is left of that bar becomes the pick-up (a whole silent bar is dropped too).
        Unchanged if it starts with a note."""
        onsets, _, _ = note_events(self.tokens)
        if not onsets.size or onsets[0] == 0:
            return self
        first = int(onsets[0])
        bar = self.metre.steps_per_bar
        position = (first + self.metric_offset) % bar
        return Melody(self.tokens[first:], dict(self.metadata), self.metre, self.key,
                      (bar - position) % bar)

    # --------------------------------------------------------------------- JSON
    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object of the melody (:mod:`rlcomposer.music.melody_json`)."""
        return melody_json_dict(self)

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys): equal melodies give equal bytes."""
        return json.dumps(self.to_json_dict(), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Melody:
        """A melody read from its JSON object (:mod:`rlcomposer.music.melody_json`)."""
        return melody_from_json_dict(cls, data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Melody:
        return cls.from_json_dict(limits.read_json(text))

    # ------------------------------------------------------------------ music21
    def to_stream(self, tempo_bpm: float = DEFAULT_TEMPO_BPM, title: str | None = None):
        """A ``music21.stream.Score`` with one part in the melody's metre and key, in measures.

        A pick-up is an incomplete first measure (number 0, no rests before it).
        Always a treble clef: the ottava treble (``Treble8vbClef``) when the
        melody lies low (:func:`engraving_clef`), never a bass clef. The title is
        ``title``, else the metadata's, else "Melody"; rlcomposer is named as the
        encoding software, not as a composer.
        """
        from music21 import key, metadata, meter, note, stream, tempo

        flat = stream.Part()
        flat.append(engraving_clef(self))
        flat.append(meter.TimeSignature(self.metre.name))
        flat.append(key.Key(self.key.tonic.replace("b", "-"), self.key.mode))
        flat.append(tempo.MetronomeMark(number=tempo_bpm))
        padding = self.metric_offset if self.pickup_steps else 0
        if padding:  # a placeholder so that makeMeasures bars the pick-up; removed below
            flat.append(note.Rest(quarterLength=padding / STEPS_PER_QUARTER))
        cursor = 0
        for pitch, onset, duration in self.notes():
            start = round(onset * STEPS_PER_QUARTER)
            if start > cursor:
                flat.append(note.Rest(quarterLength=(start - cursor) / STEPS_PER_QUARTER))
            sounding = note.Note(pitch, quarterLength=duration)
            if sounding.pitch.accidental is not None and sounding.pitch.accidental.alter == 0:
                sounding.pitch.accidental = None  # else music21 prints stray naturals in the score
            flat.append(sounding)
            cursor = start + round(duration * STEPS_PER_QUARTER)
        if cursor < self.num_steps:
            flat.append(note.Rest(quarterLength=(self.num_steps - cursor) / STEPS_PER_QUARTER))
        part = flat
        if padding:  # barred here (else at export, which keeps an unfinished last bar as it is)
            part = flat.makeMeasures()
            part.makeTies(inPlace=True)  # a note of the pick-up that sounds into bar 1 is tied over the bar line
            part.makeAccidentals(inPlace=True)  # else a tie's hidden accidental stops the export from making them
            make_pickup_measure(part, padding / STEPS_PER_QUARTER)
        score = stream.Score()
        info = metadata.Metadata()
        info.title = title or self.metadata.get("title") or "Melody"
        info.add("software", f"rlcomposer {_package_version()}")
        score.insert(0, info)
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
            num_steps, metadata, metre, key, stream_pickup_steps(score, metre),
        )

    # --------------------------------------------------------------------- MIDI
    def to_midi_bytes(self, tempo_bpm: float = DEFAULT_TEMPO_BPM, program: int = 0,
                      title: str | None = None) -> bytes:
        """A type-0 Standard MIDI File in the melody's metre and key, at the given tempo and GM
        program, starting at the first note (a pick-up's length is kept in a text event)."""
        import mido

        tick = MIDI_TICKS_PER_QUARTER // STEPS_PER_QUARTER
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=str(title or self.metadata.get("title") or "Melody")))
        track.append(mido.MetaMessage("time_signature", numerator=self.metre.numerator,
                                      denominator=self.metre.denominator))
        track.append(mido.MetaMessage("key_signature", key=midi_key_name(self.key)))
        track.append(mido.MetaMessage("text", text=f"{MIDI_KEY_TEXT}{self.key.name}"))
        if self.pickup_steps:
            track.append(mido.MetaMessage("text", text=f"{MIDI_PICKUP_TEXT}{self.pickup_steps}"))
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
        midi = limits.read_midi(data)
        tick = midi.ticks_per_beat / STEPS_PER_QUARTER
        raw, end_tick = limits.midi_notes(midi)
        metre, key = midi_signature(midi)
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
        pickup = midi_pickup_steps(midi)
        if pickup:
            try:
                check_pickup_steps(pickup, metre, num_steps)
            except MetreError as error:
                raise MelodyError(f"the MIDI file's pick-up: {error}", "metre") from None
        return cls.from_notes(notes, num_steps, metadata, metre, key, pickup)

    # ----------------------------------------------------------------- MusicXML
    def to_musicxml_bytes(self, tempo_bpm: float = DEFAULT_TEMPO_BPM, title: str | None = None) -> bytes:
        """MusicXML (uncompressed) that opens in MuseScore and other notation programs,
        titled ``title`` (default: the metadata's title, else "Melody"), with no composer and
        rlcomposer as the encoding software."""
        from music21 import defaults
        from music21.musicxml.m21ToXml import GeneralObjectExporter

        author, defaults.author = defaults.author, ""  # else music21 names itself the composer
        try:
            return GeneralObjectExporter(self.to_stream(tempo_bpm, title)).parse()
        finally:
            defaults.author = author

    @classmethod
    def from_musicxml_bytes(cls, data: bytes, metadata: dict[str, Any] | None = None) -> Melody:
        """Read MusicXML, uncompressed or a compressed ``.mxl`` archive (its score is unpacked)."""
        score = limits.read_musicxml(data)
        limits.check_stream_length(score)
        try:
            return cls.from_stream(score, metadata)
        except MelodyError:
            raise
        except Exception as error:  # music21 objects a parse accepted but that do not convert
            raise MelodyError(f"not a readable MusicXML file: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}", "malformed") from None

    # ---------------------------------------------------------------------- ABC
    def to_abc(self, title: str | None = None, index: int = 1) -> str:
        """A single-voice ABC tune (``X:index``, titled ``title``, else the metadata's title, else
        "Melody") in its metre and key, the pick-up as a short first bar (see
        :mod:`rlcomposer.music.abc_notation`)."""
        notes = [(pitch, round(onset * STEPS_PER_QUARTER), round(duration * STEPS_PER_QUARTER))
                 for pitch, onset, duration in self.notes()]
        return write_abc(notes, self.num_steps, self.metre, self.key, self.pickup_steps,
                         title or self.metadata.get("title") or "Melody", index)

    @classmethod
    def from_abc(cls, text: str | bytes, metadata: dict[str, Any] | None = None) -> Melody:
        """Read one single-voice ABC tune. Its title goes into the metadata, and what was dropped
        (chord symbols, grace notes, decorations, chords' lower notes, repeat marks, quantised
        tuplet notes) into ``metadata["abc_dropped"]`` by kind."""
        tune = read_abc(text)
        info = dict(metadata or {})
        if tune.title:
            info.setdefault("title", tune.title)
        if tune.dropped:
            info["abc_dropped"] = dict(tune.dropped)
        return cls.from_notes(
            [(p, s / STEPS_PER_QUARTER, n / STEPS_PER_QUARTER) for p, s, n in tune.notes],
            tune.num_steps, info, tune.metre, tune.key, tune.pickup_steps)

    # -------------------------------------------------------------------- files
    def save(self, path: str | Path, tempo_bpm: float = DEFAULT_TEMPO_BPM, title: str | None = None) -> Path:
        """Write by suffix: ``.json``, ``.mid``/``.midi``, ``.musicxml``/``.xml``, ``.wav``, ``.abc``.

        Scores and MIDI files are titled ``title``, else the metadata's title, else the file's stem.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        title = title or self.metadata.get("title") or path.stem
        if suffix == ".json":
            path.write_text(self.to_json(), encoding="utf-8")
        elif suffix in (".mid", ".midi"):
            path.write_bytes(self.to_midi_bytes(tempo_bpm, title=title))
        elif suffix in (".musicxml", ".xml"):
            path.write_bytes(self.to_musicxml_bytes(tempo_bpm, title))
        elif suffix == ".wav":
            path.write_bytes(render_wav_bytes(self, tempo_bpm=tempo_bpm))
        elif suffix == ".abc":
            path.write_text(self.to_abc(title), encoding="utf-8")
        else:
            raise MelodyError(f"{path}: unknown melody file type '{suffix}'", "malformed")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Melody:
        """Read a ``.json``, ``.mid``/``.midi``, ``.musicxml``/``.xml``/``.mxl`` or ``.abc`` file."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".mid", ".midi", ".musicxml", ".xml", ".mxl", ".abc"):
            raise MelodyError(f"{path}: unknown melody file type '{suffix}'", "malformed")
        data = limits.read_melody_file(path)
        try:
            if suffix == ".json":
                return cls.from_json(data)
            if suffix in (".mid", ".midi"):
                return cls.from_midi_bytes(data, {"source": path.name})
            if suffix == ".abc":
                return cls.from_abc(data, {"source": path.name})
            return cls.from_musicxml_bytes(data, {"source": path.name})
        except MelodyError as error:
            raise MelodyError(f"{path}: {error}", error.reason) from None


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rlcomposer")
    except PackageNotFoundError:
        return "(source)"


def random_melody(rng: np.random.Generator, num_steps: int = 64,
                  metre: Metre | str | None = None, key: Key | None = None) -> Melody:
    """Uniformly random tokens (the ``random`` model of ``evaluate``)."""
    return Melody(rng.integers(0, VOCAB_SIZE, size=num_steps), {}, parse_metre(metre),
                  key or DEFAULT_KEY)
