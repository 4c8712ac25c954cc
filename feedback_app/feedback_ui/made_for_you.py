"""The "Made for you" page: a blind A/B of the melodies made for the rater and the population's.

Open to a rater who has completed the study (its set number of answers). The melodies were
made beforehand by the organiser (``rlcomposer study personalise NAME``): opening the page
reads the pool, never a model. Each pair is one of the rater's own melodies and one of the
population's, on random sides and unlabelled, answered with the rating page's buttons and
keys; the answer joins the rating page's queue (``unsent``) and is stored as a comparison
of the study, like any answer (:mod:`rlcomposer.feedback.personalise` tells A/B answers
apart by their melodies' tags). They are not answers of the study's set: the store's counts
leave them out, and so does the rating page's count of the queue (:func:`is_ab_answer`). The
organiser's per-rater results are :func:`organiser_section`. UI only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from feedback_ui.settings import AppSettings
from feedback_ui.widgets import listening_player, pair_answer_bar, prefetch_views
from rlcomposer.feedback.personalise import made_for_you_items, made_for_you_results
from rlcomposer.feedback.presentation import shared_pitch_range
from rlcomposer.feedback.store import FeedbackError, FeedbackStore, new_client_id
from rlcomposer.feedback.study import Study

PAGE = "Made for you"
"""The page's name in the rater's page switch."""
SLOT = "made_for_you"
"""Session state: the A/B pair on screen (the rating page's ``pending`` is its own)."""
NOT_READY = ("Your melodies are not ready yet: they are made from your answers after you finish, "
             "by the person running the study. Please come back later.")


def _open() -> None:
    st.session_state["page"] = PAGE


def completion_entry() -> None:
    """On the completion page: what "Made for you" is, and the button that opens it."""
    with st.container(key="made-for-you-entry"):
        st.subheader(PAGE)
        st.markdown("From your answers we made melodies to your taste. Compare them, blind, with others.")
        st.button(PAGE, key="open-made-for-you", type="primary", on_click=_open)


def _pending_ids(state: Any) -> set[frozenset[int]]:
    """Pairs answered but not stored yet (in the queue)."""
    return {frozenset(u["entry"]["melody_ids"]) for u in state.get("unsent", [])}


def _next_entry(store: FeedbackStore, study: Study, rater_id: int) -> tuple[dict[str, Any] | None, Any]:
    offered = made_for_you_items(store, study, rater_id)
    queued = _pending_ids(st.session_state)
    items = [i for i in offered.items if frozenset(i.melody_ids) not in queued]
    if not items:
        return None, offered
    item = items[0]
    return {"kind": "pair", "melody_ids": list(item.melody_ids), "is_repeat": False, "client_id": new_client_id(),
            "shown_left": random.choice("ab"), "shown_at": time.time(), "played": {}, "heard_before": [],
            "study_id": study.id, "rater_id": rater_id, "upcoming": [list(i.melody_ids) for i in items[1:2]],
            "made_for_you": True}, offered


def is_ab_answer(unsent: dict[str, Any]) -> bool:
    """Whether a queued answer (``unsent``) is of this page's A/B, not of the study's set."""
    return bool(unsent["entry"].get("made_for_you"))


def made_for_you_page(store: FeedbackStore, settings: AppSettings, study: Study, counts: dict[str, int],
                      give_answer: Callable[..., None]) -> None:
    """The blind A/B; ``give_answer`` is the rating page's button callback (it queues the answer)."""
    state = st.session_state
    if state.get("refused"):
        st.error(state.pop("refused"))
    if state.pop("saved", None):
        st.toast("Saved", icon=":material/check_circle:")
    rater_id = state["rater"]["id"]
    if counts["answered"] < study.spec.items_per_rater:
        st.info(f"Made for you opens once you have finished the study ({study.spec.items_per_rater} answers).")
        return
    entry = state.get(SLOT)
    if entry is None or entry.get("study_id") != study.id or entry.get("rater_id") != rater_id:
        entry, offered = _next_entry(store, study, rater_id)
        state[SLOT] = entry
        if entry is None:
            if not offered.ready:
                st.info(NOT_READY, icon=":material/hourglass_top:")
            else:
                st.success(f"You have compared all your melodies ({offered.answered} pairs). Thank you!")
            return
    try:
        records = store.get_melodies(entry["melody_ids"])
    except FeedbackError as error:
        state[SLOT] = None
        st.error(f"This pair cannot be shown: {error}.")
        return
    a, b = (records[i] for i in entry["melody_ids"])
    left, right = (a, b) if entry["shown_left"] == "a" else (b, a)
    other = "b" if entry["shown_left"] == "a" else "a"
    fraction = study.spec.listen_fraction
    st.caption("One of these two was made for you from your answers; the other was made for everyone. "
               + ("Play both; the buttons open once both have played. " if fraction > 0 else "")
               + "Which do you like more? <span class='rlc-keys'>Keys: A, B, = (about the same), S (skip); "
               "space plays.</span>", unsafe_allow_html=True)
    pitch_range = shared_pitch_range([left.melody, right.melody])
    labels = ("A", "B")
    with st.container(key="pair-area"):
        with st.container(key="pair-columns"):
            heard = {}
            for column, record, label in zip(st.columns(2), (left, right), labels, strict=True):
                with column:
                    st.markdown(f"**{label}**")
                    heard[label] = listening_player(record.melody, settings.tempo_bpm, entry["client_id"], label,
                                                    fraction, pitch_range)
            ready = all(h["heard"] for h in heard.values())
            required = {label: h["required_ms"] for label, h in heard.items()}
        pair_answer_bar(entry, other, labels, required, ready, give_answer, SLOT)
    for upcoming in entry.get("upcoming") or []:  # the next pair's views, rendered in the background
        try:
            melodies = [r.melody for r in store.get_melodies(upcoming).values()]
        except FeedbackError:
            continue
        prefetch_views(melodies, settings.tempo_bpm, shared_pitch_range(melodies))


# ---------------------------------------------------------------- organiser
def organiser_section(store: FeedbackStore, study: Study) -> None:
    """Per rater: the A/B answers, how often the personal melody was preferred, its 95% interval; a total."""
    import pandas as pd

    st.markdown(f"**{PAGE}** (blind A/B: each rater's own melodies against the population's)")
    rows, total = made_for_you_results(store, study)
    if not rows:
        st.caption(f"No made-for-you melodies yet: `rlcomposer study personalise {study.name}` makes them "
                   "(raters who completed the study then compare them).")
        return

    def shown(row) -> dict[str, Any]:
        low, high = row.interval
        return {"rater": row.rater, "melodies made": row.made, "A/B answers": row.answers,
                "personal preferred": "—" if row.share is None else f"{100 * row.share:.0f}%",
                "95% interval": "—" if row.share is None else f"{100 * low:.0f}–{100 * high:.0f}%",
                "skips": row.skips}

    with st.container(key="made-for-you-results"):
        st.table(pd.DataFrame([shown(r) for r in rows] + [shown(total)]).set_index("rater"))
    st.caption("Ties count ½; skips are left out. Above 50%: the rater's own melodies were preferred.")
