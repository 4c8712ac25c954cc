"""A melody made ready for the rating page: audio, engraved score and piano roll.

:func:`prepare_melody_view` renders the WAV (:func:`rlcomposer.music.audio.render_wav_bytes`;
the playback copy starts at the first sounding note, the download keeps the melody's
real timing), engraves the score with verovio (SVG), and draws a piano roll (SVG,
drawn directly: no plotting library). verovio's toolkit is not thread-safe, so each
thread keeps its own (pointed at the fonts shipped with verovio).

Engraving rules, the same for every melody (so that the notation gives nothing away):

* always a treble clef; the ottava treble clef (treble with an 8 below) for a melody
  that lies low (:func:`clef_for`);
* rests are written in plain (undotted) values that start on their own beat
  subdivision: never a double-dotted rest, also in a pick-up bar;
* a fixed page width, so a dense melody is not drawn smaller than a sparse one.

Piano rolls of a pair share one labelled pitch axis (:func:`shared_pitch_range`).
The bar length comes from the melody's metre when it has one
(``melody.metre.steps_per_bar``), else 16 steps (4/4).
"""

from __future__ import annotations

import io
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from html import escape
from pathlib import Path

from rlcomposer.music.audio import render_wav_bytes
from rlcomposer.music.melody import (
    DEFAULT_TEMPO_BPM,
    LOW_MELODY_MEDIAN_PITCH,
    STEPS_PER_QUARTER,
    Melody,
    engraving_clef,
    token_name,
)


@dataclass(frozen=True)
class PresentationConfig:
    """How a melody is shown and played on the rating page."""

    tempo_bpm: float = DEFAULT_TEMPO_BPM
    """Quarter notes per minute of the audio."""
    score_scale: int = 40
    """verovio's zoom, in percent."""
    score_page_width: int = 2200
    """verovio's page width (its own units; the SVG scales to the column)."""
    roll_width: int = 640
    """Width of the piano roll drawing, in pixels."""
    roll_height: int = 180
    """Height of the piano roll drawing, in pixels."""
    pitch_range: tuple[int, int] | None = None
    """Lowest and highest MIDI pitch of the piano roll's axis (None: the melody's own range);
    the two melodies of a pair share one (:func:`shared_pitch_range`)."""


@dataclass(frozen=True)
class MelodyView:
    """Everything the rating page shows for one melody."""

    wav: bytes
    """The melody's audio with its real timing (leading rests included): the download."""
    score_svg: str
    piano_roll_svg: str
    playback_wav: bytes = b""
    """The audio the page plays: from the first sounding note on."""
    playback_ms: int = 0
    """Length of :attr:`playback_wav` in milliseconds."""
    sounding_ms: int = 0
    """From the first note's start to the last note's end, in milliseconds: what a rater must
    hear (trailing rests and the last note's fade are not waited for)."""


LOW_MELODY_MEDIAN = LOW_MELODY_MEDIAN_PITCH
"""A melody whose median pitch is below this (middle C) is written in the ottava treble clef."""
ROLL_MARGIN = 2
"""Semitones of air above and below the notes on the piano roll."""
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def steps_per_bar(melody: Melody) -> int:
    """Sixteenth steps per bar of ``melody``: its metre's."""
    return melody.metre.steps_per_bar


def pitch_name(pitch: int) -> str:
    """``60 -> "C4"`` (scientific pitch notation)."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def shared_pitch_range(melodies: Sequence[Melody]) -> tuple[int, int]:
    """One pitch axis for several piano rolls (a pair): the lowest and highest note of all, with air."""
    pitches = [p for melody in melodies for p, _, _ in melody.notes()] or [60]
    return min(pitches) - ROLL_MARGIN, max(pitches) + ROLL_MARGIN


def clef_for(melody: Melody):
    """The clef rule: treble, or ottava treble (``Treble8vbClef``) when the melody lies low
    (the rule MusicXML export uses too: :func:`~rlcomposer.music.melody.engraving_clef`)."""
    return engraving_clef(melody)


def _rest_pieces(start: Fraction, length: Fraction) -> list[Fraction]:
    """Split a rest (in quarter notes, from ``start`` within its bar) into undotted values
    that each start on a multiple of their own length."""
    pieces = []
    position, left = start, length
    values = [Fraction(4), Fraction(2), Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(1, 8)]
    while left > 0:
        for value in values:
            if value <= left and (position / value).denominator == 1:
                break
        else:
            value = left  # off the grid (cannot happen on the sixteenth grid)
        pieces.append(value)
        position += value
        left -= value
    return pieces


def engraving_stream(melody: Melody, tempo_bpm: float = DEFAULT_TEMPO_BPM):
    """The melody's music21 score, notated for the rating page: bars made, the clef rule
    applied, rests in plain values (no dotted rests)."""
    from music21 import clef, note, stream

    score = melody.to_stream(tempo_bpm)
    part = score.parts[0]
    for old in list(part.recurse().getElementsByClass(clef.Clef)):
        old.activeSite.remove(old)
    part.insert(0, clef_for(melody))
    part.makeMeasures(inPlace=True)
    part.makeTies(inPlace=True)
    for measure in part.getElementsByClass(stream.Measure):
        for rest in list(measure.getElementsByClass(note.Rest)):
            start, length = Fraction(rest.offset), Fraction(rest.quarterLength)
            pieces = _rest_pieces(start, length)
            if len(pieces) == 1 and rest.duration.dots == 0:
                continue
            measure.remove(rest)
            position = start
            for piece in pieces:
                measure.insert(float(position), note.Rest(quarterLength=float(piece)))
                position += piece
    return score


def playback_wav_bytes(wav: bytes, start_seconds: float) -> bytes:
    """``wav`` without its first ``start_seconds`` (the leading silence before the first note)."""
    with wave.open(io.BytesIO(wav)) as reader:
        params = reader.getparams()
        skip = min(int(round(start_seconds * params.framerate)), params.nframes)
        reader.setpos(skip)
        frames = reader.readframes(params.nframes - skip)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setparams(params)
        writer.writeframes(frames)
    return out.getvalue()


_local = threading.local()


def _toolkit(config: PresentationConfig):
    import verovio

    key = (config.score_scale, config.score_page_width)
    if getattr(_local, "key", None) != key:
        toolkit = verovio.toolkit(False)
        # a toolkit made outside the main thread does not find verovio's fonts by itself
        toolkit.setResourcePath(str(Path(verovio.__file__).parent / "data"))
        toolkit.setOptions({
            "scale": config.score_scale, "pageWidth": config.score_page_width,
            "adjustPageHeight": True, "adjustPageWidth": True, "header": "none", "footer": "none",
            "breaks": "auto", "svgViewBox": True,
        })
        _local.toolkit, _local.key = toolkit, key
    return _local.toolkit


def engrave_svg(melody: Melody, config: PresentationConfig | None = None) -> str:
    """The melody's score as SVG (all systems of the first page), engraved by verovio."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    config = config or PresentationConfig()
    toolkit = _toolkit(config)
    xml = GeneralObjectExporter(engraving_stream(melody, config.tempo_bpm)).parse()
    if not toolkit.loadData(xml.decode("utf-8")):
        raise RuntimeError("verovio could not read the melody's MusicXML")
    return toolkit.renderToSVG(1)


def piano_roll_svg(melody: Melody, config: PresentationConfig | None = None) -> str:
    """A piano roll: one bar per note (pitch up, time right), a pitch axis labelled at
    every C (and the lowest and highest pitch), bar lines and beat ticks."""
    config = config or PresentationConfig()
    width, height = config.roll_width, config.roll_height
    notes = melody.notes()
    low, high = config.pitch_range or shared_pitch_range([melody])
    axis = 34  # room for the pitch labels
    beats = max(melody.duration_beats, 1e-9)
    x_of = lambda beat: axis + (width - axis - 4) * beat / beats  # noqa: E731
    row = (height - 8) / (high - low + 1)
    y_of = lambda pitch: 4 + (high - pitch) * row  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="piano roll">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa" stroke="#ccc"/>']
    for pitch in range(low, high + 1):
        if pitch % 12 in (1, 3, 6, 8, 10):
            parts.append(f'<rect x="{axis}" y="{y_of(pitch):.1f}" width="{width - axis - 4}" '
                         f'height="{row:.1f}" fill="#f0f0f0"/>')
        if pitch % 12 == 0 or pitch in (low, high):
            y = y_of(pitch) + row / 2 + 3.5
            parts.append(f'<text x="{axis - 4}" y="{y:.1f}" font-size="10" font-family="sans-serif" '
                         f'text-anchor="end" fill="#555">{pitch_name(pitch)}</text>')
            if pitch % 12 == 0:
                parts.append(f'<line x1="{axis}" y1="{y_of(pitch) + row:.1f}" x2="{width - 4}" '
                             f'y2="{y_of(pitch) + row:.1f}" stroke="#d8d8d8" stroke-width="0.8"/>')
    bar = steps_per_bar(melody)
    beat_steps = 6 if bar % 12 == 0 and bar != 48 else STEPS_PER_QUARTER  # compound metres: dotted quarters
    for step in range(0, melody.num_steps + 1, beat_steps):
        x = x_of(step / STEPS_PER_QUARTER)
        strong = step % bar == 0
        parts.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 4}" '
                     f'stroke="{"#999" if strong else "#e0e0e0"}" stroke-width="{1.5 if strong else 1}"/>')
    for pitch, onset, duration in notes:
        x0, x1 = x_of(onset), x_of(onset + duration)
        label = escape(f"{pitch_name(pitch)} ({token_name(pitch - 48 + 2)})")
        parts.append(f'<rect x="{x0 + 0.5:.1f}" y="{y_of(pitch):.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                     f'height="{row:.1f}" rx="2" fill="#3b6ea5"><title>{label}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def prepare_melody_view(melody: Melody, config: PresentationConfig | None = None) -> MelodyView:
    """Audio, engraved score and piano roll of ``melody`` (what the rating page needs)."""
    config = config or PresentationConfig()
    wav = render_wav_bytes(melody, tempo_bpm=config.tempo_bpm)
    notes = melody.notes()
    first_onset = notes[0][1] if notes else 0.0
    playback = playback_wav_bytes(wav, first_onset * 60.0 / config.tempo_bpm) if first_onset > 0 else wav
    with wave.open(io.BytesIO(playback)) as reader:
        playback_ms = int(round(1000 * reader.getnframes() / reader.getframerate()))
    last_end = max((onset + length for _, onset, length in notes), default=first_onset)
    sounding_ms = min(playback_ms, int(round(1000 * (last_end - first_onset) * 60.0 / config.tempo_bpm)))
    return MelodyView(
        wav=wav,
        score_svg=engrave_svg(melody, config),
        piano_roll_svg=piano_roll_svg(melody, config),
        playback_wav=playback,
        playback_ms=playback_ms,
        sounding_ms=sounding_ms,
    )
