"""A melody made ready for the rating page: audio, engraved score and piano roll.

:func:`prepare_melody_view` renders the WAV (:func:`rlcomposer.music.audio.render_wav_bytes`),
engraves the score with verovio from the melody's MusicXML (SVG), and draws a
piano roll (SVG, drawn directly: no plotting library). verovio's toolkit is
not thread-safe, so each thread keeps its own (pointed at the fonts shipped with verovio).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from html import escape
from pathlib import Path

from rlcomposer.music.audio import render_wav_bytes
from rlcomposer.music.melody import (
    DEFAULT_TEMPO_BPM,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    Melody,
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
    roll_height: int = 160
    """Height of the piano roll drawing, in pixels."""


@dataclass(frozen=True)
class MelodyView:
    """Everything the rating page shows for one melody."""

    wav: bytes
    score_svg: str
    piano_roll_svg: str


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
    config = config or PresentationConfig()
    toolkit = _toolkit(config)
    if not toolkit.loadData(melody.to_musicxml_bytes(config.tempo_bpm).decode("utf-8")):
        raise RuntimeError("verovio could not read the melody's MusicXML")
    return toolkit.renderToSVG(1)


def piano_roll_svg(melody: Melody, config: PresentationConfig | None = None) -> str:
    """A piano roll: one bar per note (pitch up, time right), bar lines and beat ticks."""
    config = config or PresentationConfig()
    width, height = config.roll_width, config.roll_height
    notes = melody.notes()
    pitches = [p for p, _, _ in notes] or [60]
    low, high = min(pitches) - 2, max(pitches) + 2
    beats = max(melody.duration_beats, 1e-9)
    x_of = lambda beat: 4 + (width - 8) * beat / beats  # noqa: E731
    row = (height - 8) / (high - low + 1)
    y_of = lambda pitch: 4 + (high - pitch) * row  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="piano roll">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa" stroke="#ccc"/>']
    for pitch in range(low, high + 1):
        if pitch % 12 in (1, 3, 6, 8, 10):
            parts.append(f'<rect x="4" y="{y_of(pitch):.1f}" width="{width - 8}" height="{row:.1f}" fill="#f0f0f0"/>')
    for step in range(0, melody.num_steps + 1, STEPS_PER_QUARTER):
        x = x_of(step / STEPS_PER_QUARTER)
        strong = step % STEPS_PER_BAR == 0
        parts.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 4}" '
                     f'stroke="{"#999" if strong else "#e0e0e0"}" stroke-width="{1.5 if strong else 1}"/>')
    for pitch, onset, duration in notes:
        x0, x1 = x_of(onset), x_of(onset + duration)
        label = escape(token_name(pitch - 48 + 2))
        parts.append(f'<rect x="{x0 + 0.5:.1f}" y="{y_of(pitch):.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                     f'height="{row:.1f}" rx="2" fill="#3b6ea5"><title>{label}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def prepare_melody_view(melody: Melody, config: PresentationConfig | None = None) -> MelodyView:
    """Audio, engraved score and piano roll of ``melody`` (what the rating page needs)."""
    config = config or PresentationConfig()
    return MelodyView(
        wav=render_wav_bytes(melody, tempo_bpm=config.tempo_bpm),
        score_svg=engrave_svg(melody, config),
        piano_roll_svg=piano_roll_svg(melody, config),
    )
