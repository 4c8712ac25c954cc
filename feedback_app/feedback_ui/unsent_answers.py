"""Answers given but not stored yet (the rating database down, locked, gone): the queue
``unsent`` in session state, sent again before anything else on every rerun and with "Send
again", and kept in the browser (localStorage, by the hidden answer keeper) so that a reload
during an outage loses none. Each answer carries its submission id: the store keeps one of
each, however often it is sent. UI only; it never imports the pages (:mod:`feedback_ui.main`
imports it).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import streamlit as st

from feedback_ui.widgets import ANSWER_KEEPER_KEY, answer_keeper
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.store import FeedbackError, FeedbackStore

LOG = logging.getLogger("rlcomposer.app")
OUTAGE = "the rating database is not reachable right now"


def session_state() -> Any:
    """The session state with the queue's keys set: ``unsent`` (oldest first), the answer
    keeper's session and the browser's keys already taken in (``absorbed``)."""
    state = st.session_state
    state.setdefault("unsent", [])
    state.setdefault("keeper_session", uuid.uuid4().hex)
    state.setdefault("absorbed", [])
    return state


def _send(store: FeedbackStore, unsent: dict[str, Any]) -> None:
    entry, answer = unsent["entry"], unsent["answer"]
    common = dict(session_id=unsent["session_id"], is_repeat=entry["is_repeat"], listened_ms=unsent["listened_ms"],
                  answer_ms=unsent["answer_ms"], study_id=unsent["study_id"])
    if entry["kind"] == "single":
        store.submit_rating(entry["client_id"], unsent["rater_id"], entry["melody_ids"][0], answer, **common)
    else:
        store.submit_comparison(entry["client_id"], unsent["rater_id"], entry["melody_ids"][0],
                                entry["melody_ids"][1], answer, entry["shown_left"], **common)


def flush_unsent(store: FeedbackStore) -> bool:
    """Send every queued answer, oldest first. True when the queue is empty afterwards; a
    refused answer (bad or repeated) is dropped with a message, nothing else is lost."""
    state = session_state()
    while state["unsent"]:
        unsent = state["unsent"][0]
        try:
            _send(store, unsent)
        except DatabaseUnavailable as error:
            LOG.warning("answers not stored yet: %s", error)
            state["send_error"] = OUTAGE
            return False
        except FeedbackError as error:
            state["refused"] = f"Your answer ({answer_label(unsent)}) was not stored: {error}"
        else:
            state["saved"] = answer_label(unsent)
        state["unsent"].pop(0)
        state.pop("send_error", None)
    return True


def answer_label(unsent: dict[str, Any]) -> str:
    entry, answer = unsent["entry"], unsent["answer"]
    if entry["kind"] == "single":
        return f"{answer} star{'s' if answer != 1 else ''}"
    if answer in ("tie", "skip"):
        return {"tie": "about the same", "skip": "skipped"}[answer]
    return "A (left)" if answer == entry["shown_left"] else "B (right)"


def unsent_page(store: FeedbackStore) -> None:
    """The database could not take the answers yet: say so, keep them, offer "Send again"."""
    state = session_state()
    count = len(state["unsent"])
    st.error(f"Your answer{'s are' if count > 1 else ' is'} not saved yet: {OUTAGE}. Nothing you entered "
             f"is lost: {'they are' if count > 1 else 'it is'} kept here (also if you reload the page) and "
             "sent as soon as the database is back.")
    st.button("Send again", key="resend", type="primary")


def restore_unsent() -> None:
    """Answers the browser kept from an earlier page (a reload during an outage) join the
    queue, once each (they carry their submission ids: the store keeps one of each)."""
    state = session_state()
    value = st.session_state.get(ANSWER_KEEPER_KEY)
    if not isinstance(value, dict) or value.get("nonce") in state.setdefault("restored_nonces", []):
        return
    state["restored_nonces"].append(value.get("nonce"))
    known = {u["entry"]["client_id"] for u in state["unsent"]}
    dropped = 0
    for unsent in value.get("restore") or []:
        if not _well_formed(unsent):
            dropped += 1
            continue
        if unsent["entry"]["client_id"] not in known:
            known.add(unsent["entry"]["client_id"])
            state["unsent"].append(unsent)
    if dropped:
        state["refused"] = f"{dropped} answer{'s' if dropped > 1 else ''} kept in this browser could not be read "
        state["refused"] += "(damaged) and were not sent."
    state["absorbed"] = [k for k in value.get("keys") or [] if isinstance(k, str)]


def _well_formed(unsent: Any) -> bool:
    """An answer kept in the browser that has everything needed to send it."""
    try:
        entry = unsent["entry"]
        return (isinstance(entry["client_id"], str) and entry["kind"] in ("single", "pair")
                and isinstance(entry["melody_ids"], list) and all(k in unsent for k in (
                    "answer", "listened_ms", "answer_ms", "rater_id", "session_id", "study_id")))
    except (KeyError, TypeError):
        return False


def keep_unsent() -> None:
    """The hidden answer keeper, holding the answers not stored yet in the browser."""
    state = session_state()
    answer_keeper(state["keeper_session"], state["unsent"], state["absorbed"])
