"""Widgets shared by the pages: a melody's audio, score and piano roll; error boxes."""

from __future__ import annotations

import base64

import streamlit as st

from rlcomposer.feedback.presentation import MelodyView, PresentationConfig, prepare_melody_view
from rlcomposer.music.melody import Melody


@st.cache_data(max_entries=512, show_spinner=False)
def melody_view(tokens: tuple[int, ...], tempo_bpm: float) -> MelodyView:
    """Audio, score and piano roll of a melody (cached: the next item is prepared ahead)."""
    return prepare_melody_view(Melody(list(tokens)), PresentationConfig(tempo_bpm=tempo_bpm))


def _svg_image(svg: str, alt: str, background: str = "white") -> None:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    st.markdown(
        f'<img alt="{alt}" src="data:image/svg+xml;base64,{data}" '
        f'style="width:100%;background:{background};border-radius:4px"/>',
        unsafe_allow_html=True,
    )


def show_melody(melody: Melody, tempo_bpm: float, label: str = "") -> None:
    """The audio player, the engraved score and the piano roll of ``melody``."""
    view = melody_view(tuple(int(t) for t in melody.tokens), tempo_bpm)
    st.audio(view.wav, format="audio/wav")
    _svg_image(view.score_svg, f"score {label}".strip())
    _svg_image(view.piano_roll_svg, f"piano roll {label}".strip(), "#fafafa")
