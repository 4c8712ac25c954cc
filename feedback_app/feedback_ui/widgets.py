"""Widgets shared by the pages: a melody's listening player, score and piano roll.

Melody views (audio, score, piano roll) are kept in a small per-process cache and the
next item's are rendered ahead on a background thread (:func:`prefetch_views`), so
the page that follows an answer only reads them.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components

from rlcomposer.feedback.presentation import (
    MelodyView,
    PresentationConfig,
    drawn_melody,
    piano_roll_svg,
    prepare_melody_view,
)
from rlcomposer.music.melody import Melody

PLAYER_TOLERANCE_MS = 300
"""Playback reports arrive every ~250 ms: a melody counts as played this much before its end."""
_CACHE_SIZE = 512

_player = components.declare_component("listen_player", path=str(Path(__file__).parent / "listen_player"))
_keeper = components.declare_component("answer_keeper", path=str(Path(__file__).parent / "answer_keeper"))
ANSWER_KEEPER_KEY = "answer-keeper"


def answer_keeper(session: str, unsent: list[dict[str, Any]], absorbed: list[str]) -> None:
    """The hidden component that keeps the answers not stored yet in the browser (localStorage),
    so that a reload during a database outage loses none; answers it finds from an earlier
    page come back as this key's value (``{"restore": [...], "keys": [...], "nonce": ...}``)."""
    with st.container(key="answer-keeper-box"):
        _keeper(session=session, unsent=unsent, absorbed=absorbed, key=ANSWER_KEEPER_KEY, default=None)


class _ViewCache:
    """Rendered melody views by (melody as drawn, tempo, pitch range), with background rendering."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple, tuple[MelodyView, str]] = OrderedDict()
        self._running: dict[tuple, Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlc-render")

    def _render(self, key: tuple) -> tuple[MelodyView, str]:
        """Audio and score once per melody (the slow part); the piano roll per pitch axis (a pair's)."""
        melody, tempo, pitch_range = key
        if pitch_range is not None:
            base, data_url = self._base((melody, tempo, None))
            roll = piano_roll_svg(melody, PresentationConfig(tempo_bpm=tempo, pitch_range=pitch_range))
            return replace(base, piano_roll_svg=roll), data_url
        view = prepare_melody_view(melody, PresentationConfig(tempo_bpm=tempo))
        data_url = "data:audio/wav;base64," + base64.b64encode(view.playback_wav).decode("ascii")
        return view, data_url

    def _base(self, key: tuple) -> tuple[MelodyView, str]:
        """The melody's own view, never waiting on the background renderer (which may be the caller)."""
        with self._lock:
            if key in self._done:
                return self._done[key]
        value = self._render(key)
        with self._lock:
            self._done[key] = value
        return value

    def _store(self, key: tuple, value: tuple[MelodyView, str]) -> None:
        with self._lock:
            self._done[key] = value
            self._done.move_to_end(key)
            while len(self._done) > _CACHE_SIZE:
                self._done.popitem(last=False)
            self._running.pop(key, None)

    def get(self, key: tuple) -> tuple[MelodyView, str]:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            future = self._running.get(key)
        if future is not None:
            return future.result()
        value = self._render(key)
        self._store(key, value)
        return value

    def prefetch(self, key: tuple) -> None:
        with self._lock:
            if key in self._done or key in self._running:
                return

            def work() -> tuple[MelodyView, str]:
                value = self._render(key)
                self._store(key, value)
                return value

            self._running[key] = self._pool.submit(work)


@st.cache_resource(show_spinner=False)
def _views() -> _ViewCache:
    return _ViewCache()


def view_key(melody: Melody, tempo_bpm: float, pitch_range: tuple[int, int] | None) -> tuple:
    """The cache key: the melody as drawn (tokens, metre, key, pick-up), the tempo, the pitch axis."""
    return (drawn_melody(melody), float(tempo_bpm), pitch_range)


def melody_view(melody: Melody, tempo_bpm: float, pitch_range: tuple[int, int] | None = None) -> MelodyView:
    """Audio, score and piano roll of a melody (cached)."""
    return _views().get(view_key(melody, tempo_bpm, pitch_range))[0]


def prefetch_views(melodies: list[Melody], tempo_bpm: float, pitch_range: tuple[int, int] | None = None) -> None:
    """Render these views in the background (the next item), so they show at once."""
    for melody in melodies:
        _views().prefetch(view_key(melody, tempo_bpm, pitch_range))


def svg_image(svg: str, alt: str, background: str = "white") -> None:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    st.markdown(
        f'<img alt="{alt}" src="data:image/svg+xml;base64,{data}" '
        f'style="width:100%;background:{background};border-radius:4px"/>',
        unsafe_allow_html=True,
    )


def required_listening_ms(view: MelodyView, listen_fraction: float) -> int:
    """How much of a melody must have played before the answer buttons open: the share of it
    up to its last note's end (trailing rests are not waited for)."""
    if listen_fraction <= 0:
        return 0
    return max(0, int(view.sounding_ms * listen_fraction) - PLAYER_TOLERANCE_MS)


def _audio_source(view: MelodyView, data_url: str, label: str) -> str:
    """Where the player loads the audio from: a media URL of this Streamlit server (a small
    message per rerun; the browser fetches and caches the file), else the data URL."""
    try:
        from streamlit import runtime

        if runtime.exists():
            url = runtime.get_instance().media_file_mgr.add(view.playback_wav, "audio/wav", f"rlc-player-{label}")
            base = (st.get_option("server.baseUrlPath") or "").strip("/")
            return f"/{base}{url}" if base and not url.startswith(f"/{base}/") else url
    except Exception:  # noqa: BLE001 - no server (e.g. a test harness): inline the audio
        pass
    return data_url


def listening_player(melody: Melody, tempo_bpm: float, item: str, label: str, listen_fraction: float,
                     pitch_range: tuple[int, int] | None = None, show_notation: bool = True,
                     kept_ms: int = 0, heard_before: bool = False) -> dict[str, Any]:
    """The player (a custom component reporting how long it has played on its own), then the
    score and the piano roll. ``kept_ms``: what had played of this item before a reload;
    ``heard_before``: the rater heard this melody in full in an earlier item (no listening
    required). Returns ``{"played_ms": n, "heard": bool, "required_ms": m, "in_full": bool}``
    for ``item`` (``in_full``: played to its last note's end)."""
    view, data_url = _views().get(view_key(melody, tempo_bpm, pitch_range))
    required = 0 if heard_before else required_listening_ms(view, listen_fraction)
    value = _player(src=_audio_source(view, data_url, label), item=item, label=label, required_ms=required,
                    duration_ms=view.playback_ms, played_ms=int(kept_ms), heard_before=bool(heard_before),
                    key=f"player-{label}", default=None)
    played = int(value.get("played_ms", 0)) if isinstance(value, dict) and value.get("item") == item else 0
    played = max(played, int(kept_ms))
    if show_notation:
        with st.container(key=f"notation-{label}"):
            svg_image(view.score_svg, f"score {label}".strip())
            svg_image(view.piano_roll_svg, f"piano roll {label}".strip(), "#fafafa")
    return {"played_ms": played, "heard": played >= required, "required_ms": required,
            "in_full": played >= required_listening_ms(view, 1.0)}


def played_ms(label: str, item: str, kept_ms: int = 0) -> int:
    """The latest play time the player ``label`` reported for ``item`` (at least ``kept_ms``,
    what had played before a reload; 0 when none)."""
    value = st.session_state.get(f"player-{label}")
    reported = int(value.get("played_ms", 0)) if isinstance(value, dict) and value.get("item") == item else 0
    return max(reported, int(kept_ms))


def pair_answer_bar(entry: dict[str, Any], other: Any, labels: tuple[str, ...], required: dict[str, int],
                    ready: bool, give_answer: Any, *extra: Any) -> None:
    """The pair's answer buttons (on a phone: one bar fixed at the bottom, always on screen):
    "A is better" / "B is better" (``entry["shown_left"]`` and ``other``), "About the same" and
    "Skip"; each calls ``give_answer(answer, labels, required, *extra)``. The answers wait until
    both melodies have played as the study requires (``ready``); a skip never waits."""
    item = entry["client_id"]
    with st.container(key="answer-pair-extra"):
        better_a, better_b = st.columns(2)
        for column, label, answer in ((better_a, "A", entry["shown_left"]), (better_b, "B", other)):
            column.button(f"{label} is better", key=f"answer-{'left' if label == 'A' else 'right'}-{item}",
                          width="stretch", type="primary", disabled=not ready, on_click=give_answer,
                          args=(answer, labels, required, *extra))
        tie, skip = st.columns(2)
        tie.button("About the same", key=f"answer-tie-{item}", width="stretch", disabled=not ready,
                   on_click=give_answer, args=("tie", labels, required, *extra))
        skip.button("Skip", key=f"answer-skip-{item}", width="stretch", on_click=give_answer,
                    args=("skip", labels, required, *extra), help="Skips are not counted as answers")
