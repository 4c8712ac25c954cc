"""A melody made ready for the rating page: audio, engraved score and piano roll.

:func:`prepare_melody_view` renders the WAV (:func:`rlcomposer.music.audio.render_wav_bytes`;
the playback copy starts at the first sounding note, the download keeps the melody's
real timing), engraves the score with verovio (SVG), and draws a piano roll (SVG,
drawn directly: no plotting library). verovio's toolkit is not thread-safe, so each
thread keeps its own (pointed at the fonts shipped with verovio).

Every melody is drawn in its own metre, key signature and pick-up (a pick-up is an
incomplete first bar, never a bar of rests): what is drawn is the :class:`Melody` as
stored, not its bare tokens (:func:`drawn_melody` is the part of a melody that counts).

Engraving rules, the same for every melody (so that the notation gives nothing away):

* always a treble clef; the ottava treble clef (treble with an 8 below) for a melody
  that lies low (:func:`clef_for`);
* rests are written in plain (undotted) values that start on their own beat
  subdivision: never a double-dotted rest, also in a pick-up bar;
* a new line every :attr:`PresentationConfig.bars_per_line` bars (8, as folk tunes are
  printed; the pick-up goes with the first line);
* the page width follows the melody's shape (metre, pick-up, bars on the first line:
  :func:`score_page_width`), never its notes, so a dense melody is not drawn smaller
  than a sparse one of the same shape (and the two melodies of a pair, always of one
  metre and length, are drawn at one scale); a line of eighth notes fills it, sparser
  lines leave room at the right, denser ones are set closer.

:func:`read_engraving` reads back what an engraved score shows (time and key
signatures, lines, bars, rests, accidentals). Piano rolls of a pair share one labelled pitch axis
(:func:`shared_pitch_range`); their bar lines follow the melody's metre and pick-up, their
beat lines its beat (a dotted quarter in 6/8).
"""

from __future__ import annotations

import io
import math
import re
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
    score_page_width: int | None = None
    """verovio's page width (its own units; the SVG scales to the column); None: from the
    melody's shape (:func:`score_page_width`)."""
    bars_per_line: int = 8
    """Bars on one line of the score at most (a pick-up comes on top, on the first line)."""
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


SCORE_LINE_START = 340
"""verovio page units of a line before its first note: margins, clef, key and time signature."""
SCORE_STEP_WIDTH = 18
"""verovio page units per sixteenth step of a line: eighth notes at the spacing used here."""
SCORE_BAR_WIDTH = 20
"""verovio page units per bar line."""


def score_page_width(melody: Melody, bars_per_line: int = 8) -> int:
    """The score's page width for ``melody``, in verovio's units: room for its first line
    (the pick-up and up to ``bars_per_line`` bars of its metre) in eighth notes. It depends
    on the melody's metre, pick-up and length only."""
    bars = max(1, min(math.ceil(melody.num_bars - 1e-9), bars_per_line))
    steps = melody.pickup_steps + bars * melody.metre.steps_per_bar
    return SCORE_LINE_START + SCORE_STEP_WIDTH * steps + SCORE_BAR_WIDTH * (bars + (melody.pickup_steps > 0))


def drawn_melody(melody: Melody) -> Melody:
    """What the rating page draws and plays of ``melody``: its tokens, metre, key and pick-up,
    without its metadata (two melodies equal in these look and sound the same: a cache key)."""
    return Melody(melody.tokens, {}, melody.metre, melody.key, melody.pickup_steps)


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


def engraving_stream(melody: Melody, tempo_bpm: float = DEFAULT_TEMPO_BPM, bars_per_line: int | None = None):
    """The melody's music21 score, notated for the rating page: in its metre and key, barred
    (a pick-up as the incomplete measure 0 that :meth:`Melody.to_stream` makes), the clef
    rule applied, rests in plain values (no dotted rests) and, with ``bars_per_line``, a new
    line before bar 1 + ``bars_per_line``, 1 + 2 x ``bars_per_line``, ..."""
    from music21 import clef, layout, note, stream

    score = melody.to_stream(tempo_bpm)
    part = score.parts[0]
    for old in list(part.recurse().getElementsByClass(clef.Clef)):
        old.activeSite.remove(old)
    if not part.getElementsByClass(stream.Measure):  # a pick-up's score is barred already
        part.insert(0, clef_for(melody))
        part.makeMeasures(inPlace=True)
    else:
        part.getElementsByClass(stream.Measure).first().insert(0, clef_for(melody))
    part.makeTies(inPlace=True)
    # accidentals against the key signature (the export would skip them once a tie has hidden one)
    part.makeAccidentals(inPlace=True)
    for measure in part.getElementsByClass(stream.Measure):
        padding = Fraction(measure.paddingLeft)  # a pick-up bar starts part-way into its bar
        for rest in list(measure.getElementsByClass(note.Rest)):
            start, length = Fraction(rest.offset), Fraction(rest.quarterLength)
            pieces = _rest_pieces(start + padding, length)
            if len(pieces) == 1 and rest.duration.dots == 0:
                continue
            measure.remove(rest)
            position = start
            for piece in pieces:
                measure.insert(float(position), note.Rest(quarterLength=float(piece)))
                position += piece
    if bars_per_line:
        for index, measure in enumerate(part.getElementsByClass(stream.Measure)):
            # a break on the first bar too: verovio then takes every break from the score
            if index == 0 or (measure.number > 1 and (measure.number - 1) % bars_per_line == 0):
                measure.insert(0, layout.SystemLayout(isNew=True))
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

    key = config.score_scale
    if getattr(_local, "key", None) != key:
        verovio.enableLog(verovio.LOG_ERROR)  # not a warning on stderr for every closely set line
        toolkit = verovio.toolkit(False)
        # a toolkit made outside the main thread does not find verovio's fonts by itself
        toolkit.setResourcePath(str(Path(verovio.__file__).parent / "data"))
        toolkit.setOptions({
            "scale": config.score_scale, "adjustPageHeight": True, "adjustPageWidth": False, "header": "none", "footer": "none",
            # the score's own line breaks (every bars_per_line bars), and one more where a line is too full
            "breaks": "encoded", "svgViewBox": True,
            "spacingLinear": 0.15, "spacingNonLinear": 0.6,  # tighter than verovio's 0.25: 8 bars fit a line
        })
        _local.toolkit, _local.key = toolkit, key
    return _local.toolkit


def engrave_svg(melody: Melody, config: PresentationConfig | None = None) -> str:
    """The melody's score as SVG (all systems of the first page), engraved by verovio."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    config = config or PresentationConfig()
    toolkit = _toolkit(config)
    toolkit.setOptions({"pageWidth": config.score_page_width or score_page_width(melody, config.bars_per_line)})
    xml = GeneralObjectExporter(engraving_stream(melody, config.tempo_bpm, config.bars_per_line)).parse()
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
    bar, beat_steps = steps_per_bar(melody), melody.metre.beat_steps  # 6/8: dotted quarters
    first_beat = (-melody.metric_offset) % beat_steps  # after a pick-up, the lines follow its bar
    for step in range(first_beat, melody.num_steps + 1, beat_steps):
        x = x_of(step / STEPS_PER_QUARTER)
        strong = (step + melody.metric_offset) % bar == 0
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


@dataclass(frozen=True)
class EngravedScore:
    """What an engraved score (verovio's SVG) shows: read back by :func:`read_engraving`."""

    time_signatures: tuple[str, ...]
    """Every time signature drawn, in order (``("6/8",)``)."""
    key_sharps: int
    """Sharps of the first key signature drawn (0 when it has flats or none)."""
    key_flats: int
    """Flats of the first key signature drawn."""
    lines: int
    """Systems (lines) of music."""
    bars: int
    """Measures drawn (a pick-up counts as one)."""
    rests: int
    """Rests drawn."""
    accidentals: int
    """Accidentals drawn on notes (not in the key signature)."""


_SMUFL_DIGITS = {f"E08{d}": str(d) for d in range(10)}
_SMUFL_SHARP, _SMUFL_FLAT = "E262", "E260"


def _groups(svg: str, name: str) -> list[str]:
    """The text of each ``<g class="name">`` element of a verovio SVG (not nested in itself)."""
    found = []
    for match in re.finditer(rf'<g\b[^>]*class="{name}"[^>]*>', svg):
        if match.group(0).endswith("/>"):  # drawn empty (a key signature of C major)
            found.append("")
            continue
        depth, position = 1, match.end()
        for tag in re.finditer(r"<(/?)g\b[^>]*?(/?)>", svg[position:]):
            if tag.group(2):
                continue
            depth += -1 if tag.group(1) else 1
            if depth == 0:
                found.append(svg[position:position + tag.start()])
                break
    return found


def read_engraving(svg: str) -> EngravedScore:
    """What a score engraved by :func:`engrave_svg` shows, read from its SVG (SMuFL glyphs):
    for checks of the page (a test, or an organiser's eye) that need no image."""
    def glyphs(text: str) -> list[str]:
        return re.findall(r'xlink:href="#(E[0-9A-F]{3})', text)

    metres = []
    for group in _groups(svg, "meterSig"):
        digits = [_SMUFL_DIGITS[g] for g in glyphs(group) if g in _SMUFL_DIGITS]
        if len(digits) >= 2:  # numerator, then denominator (one digit each in the metres rlcomposer knows)
            metres.append(f"{''.join(digits[:-1])}/{digits[-1]}")
    keys = _groups(svg, "keySig")
    key = glyphs(keys[0]) if keys else []
    return EngravedScore(
        time_signatures=tuple(metres),
        key_sharps=key.count(_SMUFL_SHARP),
        key_flats=key.count(_SMUFL_FLAT),
        lines=len(re.findall(r'<g\b[^>]*class="system"', svg)),
        bars=len(re.findall(r'<g\b[^>]*class="measure[" ]', svg)),
        rests=len(re.findall(r'<g\b[^>]*class="(?:rest|mRest|multiRest)[" ]', svg)),
        accidentals=sum(bool(glyphs(group)) for group in _groups(svg, "accid")),  # an unshown one is an empty group
    )
