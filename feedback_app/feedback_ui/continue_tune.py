"""The "Continue my tune" page: a signed-in rater's own opening, continued four ways.

The rater pastes ABC or uploads a file (ABC, MIDI, MusicXML or melody JSON: the readers and
size limits of ``rlcomposer continue``), chooses the whole tune's length in bars, and gets
four continuations from the shipped prior, each with its audio, score and piano roll. Picking
one stores it as three answers of that rater (the pick preferred over each of the others,
under the rater's pool tag ``composed:<name>``), so their compositions train their reward
model like any other answer; "None of these" stores nothing. Every reading, continuing and
storing is :mod:`rlcomposer.feedback.compositions`; this module is the page only.

Session state: ``composition`` (the continuations on screen, their submission id, the pick
once made) and ``compose_error`` (the one line that says why an opening was refused).
"""

from __future__ import annotations

import random

import streamlit as st

from feedback_ui.settings import AppSettings
from feedback_ui.widgets import listening_player
from rlcomposer.feedback.compositions import (
    CHOICES_SHOWN,
    CompositionError,
    compose_continuations,
    read_pasted_opening,
    read_uploaded_opening,
    store_pick,
)
from rlcomposer.feedback.pool import COMPOSED_PREFIX
from rlcomposer.feedback.presentation import shared_pitch_range
from rlcomposer.feedback.store import FeedbackError, FeedbackStore, new_client_id
from rlcomposer.music.metre import MAX_BARS

CONTINUE_PAGE = "Continue my tune"
EXAMPLE = "X:1\nT:My tune\nM:4/4\nL:1/8\nK:G\nD2 | G2B2 d2B2 | c2A2 F2D2 |"
UPLOAD_TYPES = ["abc", "mid", "midi", "musicxml", "xml", "mxl", "json"]


@st.cache_resource(show_spinner="Loading the model...")
def _prior():
    from rlcomposer.prior.model import load_prior, prior_directory

    return load_prior(prior_directory("prior"))


def _compose() -> None:
    """Read the opening (the upload if there is one, else the pasted text) and continue it."""
    state = st.session_state
    state.pop("compose_error", None)
    text, upload, bars = state.get("compose-abc") or "", state.get("compose-upload"), state.get("compose-bars") or 8
    try:
        if upload is not None:
            opening = read_uploaded_opening(upload.name, upload.getvalue())
        else:
            opening = read_pasted_opening(text)
        composition = compose_continuations(opening, int(bars), seed=random.randrange(2**31), model=_prior())
    except CompositionError as error:
        state["compose_error"] = str(error)
        state.pop("composition", None)
        return
    state["composition"] = {"melodies": list(composition.continuations), "pick_id": new_client_id(),
                            "picked": None, "dropped": opening.metadata.get("abc_dropped") or {},
                            "shape": f"{opening.metre.name} in {opening.key.name}"}


def _pick(store: FeedbackStore, chosen: int | None) -> None:
    state = st.session_state
    composition = state.get("composition")
    if not composition or composition["picked"] is not None:
        return
    if chosen is not None:
        try:
            store_pick(store, state["rater"]["id"], composition["melodies"], chosen, composition["pick_id"],
                       state.get("session_id"))
        except (CompositionError, FeedbackError) as error:
            state["compose_error"] = f"Your pick was not stored: {error}"
            return
    composition["picked"] = "none" if chosen is None else chosen


def continue_tune_page(store: FeedbackStore, settings: AppSettings) -> None:
    state = st.session_state
    st.caption("Paste the opening of your tune in ABC (or upload an ABC, MIDI, MusicXML or JSON file), choose "
               "how long the whole tune should be, and the model writes four ways to go on. Pick the one you "
               "like best: that teaches your reward model, like your answers do.")
    with st.container(key="compose-form"):
        st.text_area("Your opening (ABC)", key="compose-abc", height=140, placeholder=EXAMPLE)
        st.file_uploader("...or upload a file (at most 4 MB)", type=UPLOAD_TYPES, key="compose-upload")
        st.number_input("Length of the whole tune in bars (your opening included)", min_value=1,
                               max_value=MAX_BARS, value=8, step=1, key="compose-bars")
        st.button("Continue my tune", key="compose-go", type="primary", on_click=_compose)
    if state.get("compose_error"):
        st.error(state["compose_error"])
    composition = state.get("composition")
    if not composition:
        return
    melodies = composition["melodies"]
    picked = composition["picked"]
    note = ""
    if composition["dropped"]:
        note = " (left out of your opening: " + ", ".join(
            f"{n} {kind}" for kind, n in sorted(composition["dropped"].items())) + ")"
    st.markdown(f"**Four continuations** of your opening, {composition['shape']}{note}. Which is best?")
    pitch_range = shared_pitch_range(melodies)
    with st.container(key="compose-continuations"):
        for row in range(0, CHOICES_SHOWN, 2):
            for index, column in zip(range(row, row + 2), st.columns(2), strict=True):
                with column, st.container(key=f"continuation-{index + 1}", border=True):
                    st.markdown(f"**{index + 1}**" + (" ✓ your pick" if picked == index else ""))
                    listening_player(melodies[index], settings.tempo_bpm, composition["pick_id"],
                                     f"continuation-{index + 1}", 0.0, pitch_range)
                    st.button(f"{index + 1} is best", key=f"compose-pick-{index + 1}", width="stretch",
                              disabled=picked is not None, on_click=_pick, args=(store, index))
    st.button("None of these", key="compose-none", disabled=picked is not None, on_click=_pick,
              args=(store, None))
    if picked == "none":
        st.info("Nothing stored. Press “Continue my tune” again for four new continuations.")
    elif picked is not None:
        st.success(f"Stored: continuation {picked + 1} preferred over the other three (3 answers, under your "
                   f"own tag {COMPOSED_PREFIX}...).")
        st.download_button("Download your pick (ABC)", melodies[picked].to_abc(), file_name="my-tune.abc",
                           mime="text/plain", key="compose-download")
