"""The app's pages: a study's sign-in, rating, my answers, completion; the organiser area.

One study per URL (``?study=NAME``; without it, the study called ``default``: made from
the app's settings the first time, then kept as stored, and refused once closed). After sign-in a rater's secret token is put into the page's URL
(``&token=...``): a reload, or the same link later, signs them back in; a name
alone never does. ``?area=organiser`` opens the organiser area (password), without
becoming a rater.

Session state (per browser tab):

* ``rater`` / ``session_id`` / ``study``: who is signed in, their rating session, the study;
* ``pending``: the item on screen, with its submission id (made when it was first
  shown), the side each melody of a pair is shown on, when it was shown, how long each
  melody has played on its own (``played``) and which were heard in full before
  (``heard_before``). It is also kept with the rater in the database: a reload (or the
  personal link later) shows the same item with its listening;
* ``upcoming``: the next item, chosen ahead (its views render in the background);
* ``unsent``: answers given but not stored yet (database down, locked, gone): kept,
  sent again before anything else on every rerun and with "Send again"; also kept in the
  browser (localStorage, by the hidden answer keeper), so a reload during an outage loses none
  (:mod:`feedback_ui.unsent_answers`).

Rater-facing messages never show the database's address (it goes to the app's log).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import streamlit as st

from feedback_ui import made_for_you, organiser, unsent_answers
from feedback_ui.continue_tune import CONTINUE_PAGE, continue_tune_page
from feedback_ui.settings import AppSettings, load_settings
from feedback_ui.widgets import (
    listening_player,
    melody_view,
    pair_answer_bar,
    played_ms,
    prefetch_views,
)
from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.experiment_stats import latest_reward_model_path
from rlcomposer.feedback.presentation import shared_pitch_range
from rlcomposer.feedback.selection import Item
from rlcomposer.feedback.store import (
    FeedbackError,
    FeedbackStore,
    InvalidToken,
    new_client_id,
    open_store,
)
from rlcomposer.feedback.study import (
    DEFAULT_STUDY,
    Study,
    StudySelection,
    default_study,
    find_study,
    study_pool_problem,
)
from rlcomposer.preferences.reward_model_cache import load_reward_model_cached

STARS_HELP = "1 star = not at all, 5 stars = love it"
LOG = logging.getLogger("rlcomposer.app")
CSS = """
<style>
.st-key-answer-area button, .st-key-answer-pair-extra button { min-height: 3rem; font-size: 1.05rem; }
.st-key-answer-pair-extra { max-width: 28rem; margin: 0 auto; }
.st-key-progress-bar { position: sticky; top: 2.9rem; z-index: 99; background: white; padding: .25rem 0; }
.st-key-answer-keeper-box { display: none; }
img[alt^="score"] { max-height: 11rem; object-fit: contain; object-position: left; }  /* a short melody is not blown up */
@media (hover: none) and (pointer: coarse) { .rlc-keys { display: none; } }  /* no keyboard hints on a touch screen */
@media (max-width: 640px) {
  /* the toolbar would cover the title; the answers bar is at the bottom, toasts go above it */
  header[data-testid="stHeader"] { display: none; }
  .block-container, [data-testid="stMainBlockContainer"] { padding: .5rem .6rem 8rem .6rem !important; }
  .st-key-progress-bar { top: 0; }
  [data-testid="stToastContainer"] { top: auto !important; bottom: 8.5rem !important; }
  .st-key-rater-header h3 { font-size: 1.15rem; padding: 0; }
  .st-key-rater-header [data-testid="stHorizontalBlock"] { flex-wrap: nowrap !important; }
  .st-key-rater-header [data-testid="stColumn"] { min-width: 0 !important; width: auto !important; }
  /* the score gets the full width; the piano roll gives its room to the second melody */
  [class*="st-key-notation-"] img[alt^="piano roll"] { display: none; }
  [class*="st-key-notation-"] img[alt^="score"] { max-height: 6.5rem; }
  /* the melodies of a pair stack (each score gets the full width); the answers stay on screen */
  .st-key-answer-area, .st-key-answer-pair-extra { position: fixed; left: 0; right: 0; bottom: 0; z-index: 999;
      background: white; box-shadow: 0 -2px 8px rgba(0,0,0,.12); padding: .4rem .5rem; max-width: none;
      width: 100% !important; margin: 0; }
  .st-key-answer-area [data-testid="stHorizontalBlock"], .st-key-answer-pair-extra [data-testid="stHorizontalBlock"]
      { flex-wrap: nowrap !important; gap: .3rem; }
  .st-key-answer-area [data-testid="stColumn"], .st-key-answer-pair-extra [data-testid="stColumn"]
      { min-width: 0 !important; width: auto !important; flex: 1 1 0 !important; }
  .st-key-answer-area button, .st-key-answer-pair-extra button { min-height: 2.6rem; padding: .2rem .3rem; }
}
</style>
"""


# ------------------------------------------------------------------ helpers
@st.cache_resource(show_spinner="Opening the rating database...")
def _store(url: str) -> FeedbackStore:
    return open_store(url)  # migrates once per process


@st.cache_resource(show_spinner=False)
def _warm_up(tempo_bpm: float) -> bool:
    """Render one melody at start-up (imports, verovio's fonts), here and on the background renderer."""
    from rlcomposer.music.melody import Melody

    melody = Melody([2 + 12, 1, 1, 1] * 4)
    melody_view(melody, tempo_bpm)
    prefetch_views([Melody([2 + 14, 1, 1, 1] * 4)], tempo_bpm)
    return True


def _state() -> Any:
    state = unsent_answers.session_state()
    state.setdefault("pending", None)
    state.setdefault("upcoming", None)
    return state


def _entry(item: Item) -> dict[str, Any]:
    return {"kind": item.kind, "melody_ids": list(item.melody_ids), "is_repeat": item.is_repeat,
            "client_id": new_client_id(), "shown_left": random.choice("ab") if item.kind == "pair" else None,
            "shown_at": None, "played": {}, "heard_before": []}


def _item(entry: dict[str, Any]) -> Item:
    return Item(entry["kind"], tuple(entry["melody_ids"]), entry["is_repeat"])


def _selection(study: Study) -> StudySelection:
    state = _state()
    chosen = state.get("selection")
    if chosen is None or chosen.study.id != study.id:
        chosen = state["selection"] = StudySelection(study, load_reward_model_cached, latest_reward_model_path)
        state.pop("strategy", None)
    return chosen


def _choose(store: FeedbackStore, study: Study) -> dict[str, Any] | None:
    state = _state()
    strategy = state.get("strategy")
    if strategy is None:
        strategy = state["strategy"] = _selection(study).strategy(store)
    exclude = [_item(e) for e in (state["pending"], state["upcoming"]) if e]
    exclude += [_item(u["entry"]) for u in state["unsent"]]
    item = strategy.next_item(store, state["rater"]["id"], study.spec.kind, exclude=exclude)
    return None if item is None else _entry(item)


def _query(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if value else None


def _plain(text: str) -> str:
    """User text shown as text: Markdown's special characters escaped."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~$" else c for c in str(text))


# ---------------------------------------------------------------- answers
def _give_answer(answer: Any, labels: tuple[str, ...], required: dict[str, int], slot: str = "pending") -> None:
    """A button's on_click: queue the answer (with what was played) and move on at once;
    the queue is sent before the page is drawn, and kept when the database is down.
    An answer (not a skip) before each melody has played as the study requires is refused.
    ``slot``: the session key of the item answered (``pending``, or Made for you's pair)."""
    state = _state()
    entry = state.get(slot)
    if not entry or "rater" not in state:
        return
    kept = entry.get("played") or {}  # what had played before a reload
    played = {label: played_ms(label, entry["client_id"], kept.get(label, 0)) for label in labels}
    if answer != "skip" and any(played[label] < required.get(label, 0) for label in labels):
        state["refused"] = "Please play the melod" + ("ies" if len(labels) > 1 else "y") + " before answering."
        return
    listened = sum(played.values())
    answer_ms = None if entry["shown_at"] is None else max(0, int((time.time() - entry["shown_at"]) * 1000))
    state["unsent"].append({"entry": dict(entry), "answer": answer, "listened_ms": listened, "answer_ms": answer_ms,
                            "rater_id": state["rater"]["id"], "session_id": state["session_id"],
                            "study_id": state["study_id"]})
    if slot == "pending":
        state["pending"], state["upcoming"] = state["upcoming"], None
    else:
        state[slot] = None


# ---------------------------------------------------------------- sign-in
def sign_in_page(store: FeedbackStore, settings: AppSettings, study: Study) -> None:
    st.title("Rate melodies")
    if study.name != DEFAULT_STUDY:
        st.caption(f"Study: {_plain(study.name)}")
    st.markdown(_plain(study.spec.instructions))
    st.caption(f"This study has {study.spec.items_per_rater} items. Your personal link signs you back in: "
               "keep this tab, or bookmark the page once you have started.")
    with st.form("sign_in"):
        name = st.text_input("Your rater name", max_chars=80, help="A name for this study (not your real name).")
        code = st.text_input("Access code", type="password") if settings.access_code else ""
        consent = st.checkbox(study.spec.consent_text or "I agree to take part.")
        submitted = st.form_submit_button("Start rating", type="primary")
    st.markdown("<small>Running this study? [Open the organiser area](?area=organiser)</small>",
                unsafe_allow_html=True)
    if not submitted:
        return
    if not settings.access_code_ok(code):
        st.error("Wrong access code. Ask the person running the study for it.")
        return
    if not consent:
        st.warning("Please tick the consent box to take part.")
        return
    try:
        rater, token = store.register_rater(name)
        store.record_consent(rater.id)
    except FeedbackError as error:
        st.error(f"Cannot sign in: {_plain(str(error))}")
        return
    st.query_params["token"] = token
    _signed_in(store, study, rater.id, rater.name, returning=False)
    st.rerun()


def _signed_in(store: FeedbackStore, study: Study, rater_id: int, name: str, returning: bool) -> None:
    state = _state()
    session_id = store.start_session(rater_id, client="streamlit", study_id=study.id)
    kept = store.current_item(rater_id, study.id) if returning else None
    if kept is not None and kept["client_id"] in {u["entry"]["client_id"] for u in state["unsent"]}:
        kept = None  # answered already, waiting in the queue
    pending = None
    if kept is not None:  # the item on screen before the reload, with what had played of it
        pending = {"kind": kept["kind"], "melody_ids": kept["melody_ids"], "is_repeat": kept["is_repeat"],
                   "client_id": kept["client_id"], "shown_left": kept["shown_left"], "shown_at": time.time(),
                   "played": kept["played_ms"], "heard_before": sorted(_heard_before(store, rater_id, kept))}
    state.update(rater={"id": rater_id, "name": name}, session_id=session_id, study_id=study.id,
                 pending=pending, upcoming=None, returning=returning)


def _heard_before(store: FeedbackStore, rater_id: int, entry: dict[str, Any]) -> set[int]:
    """The item's melodies the rater heard in full in an earlier item (no listening needed)."""
    return store.heard_melody_ids(rater_id) & set(entry["melody_ids"])


def _sign_in_with_token(store: FeedbackStore, study: Study, token: str) -> bool:
    try:
        rater = store.sign_in_with_token(token)
    except InvalidToken as error:
        st.query_params.pop("token", None)
        st.session_state["token_problem"] = str(error)
        return False
    _signed_in(store, study, rater.id, rater.name, returning=True)
    return True


# --------------------------------------------------------------- progress
def _progress(store: FeedbackStore, study: Study) -> dict[str, int]:
    state = _state()
    try:
        counts = store.count_submissions(state["rater"]["id"], study_id=study.id)
        state["counts"] = counts
    except DatabaseUnavailable:
        counts = state.get("counts") or {"answered": 0, "skips": 0}
    queued = [u for u in state["unsent"] if not made_for_you.is_ab_answer(u)]  # as the store counts
    return {"answered": counts["answered"] + sum(u["answer"] != "skip" for u in queued),
            "skips": counts["skips"] + sum(u["answer"] == "skip" for u in queued)}


def progress_bar(study: Study, counts: dict[str, int]) -> None:
    target = study.spec.items_per_rater
    answered = min(counts["answered"], target)
    with st.container(key="progress-bar"):
        skipped = f" · {counts['skips']} skipped" if counts["skips"] else ""
        st.progress(answered / target, text=f"**{answered} of {target}** answered{skipped}")


def completion_page(study: Study, counts: dict[str, int], exhausted: bool = False) -> None:
    st.header("Thank you!")
    if exhausted and counts["answered"] < study.spec.items_per_rater:
        st.success(f"You have answered everything this study has for you ({counts['answered']} answers).")
    else:
        st.success(f"You have completed the study: {counts['answered']} answers.")
    if study.spec.completion_code:
        st.markdown("Your completion code:")
        st.code(study.spec.completion_code, language=None)
    st.caption("You can close this page.")


# -------------------------------------------------------------------- rating
def rate_page(store: FeedbackStore, settings: AppSettings, study: Study, counts: dict[str, int]) -> None:
    state = _state()
    if state.get("refused"):
        st.error(state.pop("refused"))
    if state.pop("saved", None):
        st.toast("Saved", icon=":material/check_circle:")
    if counts["answered"] >= study.spec.items_per_rater:
        completion_page(study, counts)
        made_for_you.completion_entry()
        return
    entry = state["pending"]
    if entry is None:
        entry = state["pending"] = state["upcoming"] or _choose(store, study)
        state["upcoming"] = None
    if entry is None:
        completion_page(study, counts, exhausted=True)
        return
    if entry["shown_at"] is None:
        entry["shown_at"] = time.time()
        entry["heard_before"] = sorted(_heard_before(store, state["rater"]["id"], entry))
        store.save_current_item(state["rater"]["id"], study.id, entry["client_id"], entry["kind"],
                                entry["melody_ids"], entry["shown_left"], entry["is_repeat"])
    kept = entry.setdefault("played", {})
    before = set(entry.setdefault("heard_before", []))
    try:
        records = store.get_melodies(entry["melody_ids"])
    except FeedbackError as error:
        state["pending"] = None
        st.error(f"This item cannot be shown: {error}. Press Next.")
        st.button("Next", key="next-after-error")
        return
    fraction = study.spec.listen_fraction
    need = "Play it; the buttons open once it has played." if fraction > 0 else "Listen, then answer."
    if entry["kind"] == "single":
        record = records[entry["melody_ids"][0]]
        st.caption(f"{need} {STARS_HELP}. <span class='rlc-keys'>Keys: 1-5, space plays.</span>",
                   unsafe_allow_html=True)
        heard = listening_player(record.melody, settings.tempo_bpm, entry["client_id"], "melody", fraction,
                                 kept_ms=kept.get("melody", 0), heard_before=record.id in before)
        _keep_listening(store, study, entry, {"melody": (record.id, heard)})
        with st.container(key="answer-area"):
            for stars, column in zip(range(1, 6), st.columns(5), strict=True):
                column.button(f"{stars} ★", key=f"answer-stars-{stars}-{entry['client_id']}", width="stretch",
                              disabled=not heard["heard"], on_click=_give_answer,
                              args=(stars, ("melody",), {"melody": heard["required_ms"]}),
                              help=f"{stars} star{'s' if stars > 1 else ''} ({STARS_HELP})")
    else:
        a, b = (records[i] for i in entry["melody_ids"])
        left, right = (a, b) if entry["shown_left"] == "a" else (b, a)
        other = "b" if entry["shown_left"] == "a" else "a"
        st.caption(f"{need.replace('it', 'both').replace('has', 'have')} Which do you like more? "
                   "<span class='rlc-keys'>Keys: A, B, = (about the same), S (skip); space plays.</span>",
                   unsafe_allow_html=True)
        pitch_range = shared_pitch_range([left.melody, right.melody])
        labels = ("A", "B")
        with st.container(key="pair-area"):
            with st.container(key="pair-columns"):
                col_left, col_right = st.columns(2)
                heard = {}
                for column, record, label in ((col_left, left, "A"), (col_right, right, "B")):
                    with column:
                        st.markdown(f"**{label}**")
                        heard[label] = listening_player(record.melody, settings.tempo_bpm, entry["client_id"], label,
                                                        fraction, pitch_range, kept_ms=kept.get(label, 0),
                                                        heard_before=record.id in before)
                _keep_listening(store, study, entry, {"A": (left.id, heard["A"]), "B": (right.id, heard["B"])})
                ready = all(h["heard"] for h in heard.values())
                required = {label: h["required_ms"] for label, h in heard.items()}
            pair_answer_bar(entry, other, labels, required, ready, _give_answer)
    if entry["is_repeat"]:
        st.caption("(You may have heard this one before; please answer anyway.)")
    _prepare_next(store, settings, study)


def _keep_listening(store: FeedbackStore, study: Study, entry: dict[str, Any],
                    heard: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """Keep what has played of the item on screen with the rater (a reload keeps it), and
    mark the melodies heard in full (they need no listening when they come back)."""
    state = _state()
    played = {label: h["played_ms"] for label, (_, h) in heard.items()}
    recorded = entry.setdefault("recorded", dict(entry.get("played") or {}))
    if any(ms > recorded.get(label, 0) for label, ms in played.items()):
        store.record_listening(state["rater"]["id"], study.id, entry["client_id"], played)
        recorded.update({label: max(ms, recorded.get(label, 0)) for label, ms in played.items()})
    marked = entry.setdefault("marked", [])
    in_full = [melody_id for melody_id, h in heard.values() if h["in_full"] and h["played_ms"] > 0
               and melody_id not in marked]
    if in_full:
        store.mark_heard(state["rater"]["id"], in_full)
        marked.extend(in_full)


def _prepare_next(store: FeedbackStore, settings: AppSettings, study: Study) -> None:
    """Choose the next item now and render its views in the background, so it shows at once."""
    state = _state()
    if state["upcoming"] is None:
        state["upcoming"] = _choose(store, study)
    upcoming = state["upcoming"]
    if upcoming is not None:
        try:
            melodies = [r.melody for r in store.get_melodies(upcoming["melody_ids"]).values()]
        except FeedbackError:  # a melody that cannot be read: said when its item is shown
            return
        pitch_range = shared_pitch_range(melodies) if upcoming["kind"] == "pair" else None
        prefetch_views(melodies, settings.tempo_bpm, pitch_range)


# ------------------------------------------------------------------- history
def history_page(store: FeedbackStore, settings: AppSettings, study: Study) -> None:
    state = _state()
    rows = [r for r in store.rater_history(state["rater"]["id"]) if r["study_id"] == study.id]
    if not rows:
        st.info("Nothing yet: your answers appear here.")
        return

    def your_answer(row: dict[str, Any]) -> str:
        if row["kind"] == "stars":
            return "★" * row["stars"]
        choice, left = row["choice"], row["shown_left"]
        if choice in ("tie", "skip"):
            return {"tie": "about the same", "skip": "skipped"}[choice]
        return "A (left)" if choice == left else "B (right)"

    def on_screen(row: dict[str, Any]) -> tuple[int, ...]:
        if row["kind"] == "stars":
            return (row["melody_id"],)
        pair = (row["melody_id"], row["melody_b_id"])
        return pair if row["shown_left"] == "a" else pair[::-1]

    table = [{"when (UTC)": r["created_at"][:16].replace("T", " "), "what": "stars" if r["kind"] == "stars" else "A/B",
              "your answer": your_answer(r),
              "melodies": " | ".join(f"{side} #{m}" for side, m in zip(("A", "B"), on_screen(r), strict=True))
              if r["kind"] != "stars" else f"#{r['melody_id']}"} for r in rows]
    st.dataframe(table, hide_index=True, width="stretch")
    choice = st.selectbox("Play one of your answers", range(len(rows)), key="history_pick",
                          format_func=lambda i: f"{table[i]['when (UTC)']}: {table[i]['your answer']} ({table[i]['melodies']})")
    try:
        records = store.get_melodies(on_screen(rows[choice]))
    except FeedbackError as error:
        st.error(f"This answer's melodies cannot be played: {error}")
        return
    for side, melody_id in zip(("A", "B") if len(records) == 2 else ("",), on_screen(rows[choice]), strict=True):
        view = melody_view(records[melody_id].melody, settings.tempo_bpm)
        st.caption(f"{side} #{melody_id}".strip())
        st.audio(view.playback_wav, format="audio/wav")


# ---------------------------------------------------------------------- main
def _study_for_page(store: FeedbackStore, settings: AppSettings) -> Study | None:
    name = _query("study")
    if name is None:
        study = find_study(store, DEFAULT_STUDY)
        if study is None:  # made from the app's settings the first time; then it is kept as stored
            try:
                study = default_study(store, settings.default_study_spec())
            except FeedbackError as error:
                st.error(f"There is nothing to rate yet: {error}")
                return None
    else:
        study = find_study(store, name)
    if study is None:
        st.error(f"There is no study called “{_plain(name)}”. Check the link you were given.")
        return None
    if not study.is_open:
        st.info(f"The study “{_plain(study.name)}” is closed. Thank you for your interest!")
        return None
    problem = study_pool_problem(store, study)
    if problem:
        st.error(f"The study “{_plain(study.name)}” cannot start: {problem}. Please tell the person running it.")
        return None
    return study


def run() -> None:
    st.set_page_config(page_title="rlcomposer: rate melodies", page_icon="🎵", layout="wide",
                       initial_sidebar_state="collapsed")
    st.markdown(CSS, unsafe_allow_html=True)
    try:
        settings = load_settings()
    except RLComposerError as error:
        st.error(f"The app is misconfigured: {error}")
        st.stop()
    state = _state()
    try:
        store = _store(settings.database_url)
    except DatabaseUnavailable as error:
        LOG.warning("the rating database cannot be opened: %s", error)
        st.error("The rating database is not reachable right now. Please try again in a minute.")
        unsent_answers.keep_unsent()
        st.button("Try again", key="retry-open")
        st.stop()
    except RLComposerError as error:
        st.error(f"The rating database cannot be used: {error}")
        st.stop()
    _warm_up(settings.tempo_bpm)
    try:
        if _query("area") == "organiser":
            organiser.organiser_area(store, settings)
            return
        unsent_answers.restore_unsent()
        # answers given before anything else: a failing read of the next item cannot lose them
        if state["unsent"] and not unsent_answers.flush_unsent(store):
            unsent_answers.keep_unsent()
            unsent_answers.unsent_page(store)
            return
        unsent_answers.keep_unsent()
        study = _study_for_page(store, settings)
        if study is None:
            return
        if "rater" in state and state.get("study_id") != study.id:
            state.pop("rater")  # another study in this tab: sign in to it (the token still works)
        if "rater" not in state:
            token = _query("token")
            if not (token and _sign_in_with_token(store, study, token)):
                if state.get("token_problem"):
                    st.error(state.pop("token_problem"))
                sign_in_page(store, settings, study)
                return
        counts = _progress(store, study)
        if state.pop("returning", False):
            st.toast(f"Welcome back, {_plain(state['rater']['name'])}: {counts['answered']} answered so far.")
        with st.container(key="rater-header"):
            header, who = st.columns([3, 1])
            header.markdown(f"### {_plain(study.name) if study.name != DEFAULT_STUDY else 'Rate melodies'}")
            who.caption(f"Signed in as {_plain(state['rater']['name'])}")
        progress_bar(study, counts)
        done = counts["answered"] >= study.spec.items_per_rater
        pages = ["Rate", "My answers", CONTINUE_PAGE] + [made_for_you.PAGE] * done
        page = st.segmented_control("Page", pages, default="Rate", key="page", label_visibility="collapsed") or "Rate"
        if page == "Rate":
            rate_page(store, settings, study, counts)
        elif page == CONTINUE_PAGE:
            continue_tune_page(store, settings)
        elif page == made_for_you.PAGE:
            made_for_you.made_for_you_page(store, settings, study, counts, _give_answer)
        else:
            history_page(store, settings, study)
    except DatabaseUnavailable as error:
        LOG.warning("the rating database is unavailable: %s", error)
        kept = len(state["unsent"])
        unsent_answers.keep_unsent()
        st.error("The rating database is not reachable right now. Nothing you entered is lost"
                 + (f" ({kept} answer{'s' if kept > 1 else ''} kept, sent when it is back)" if kept else "")
                 + "; press Send again in a moment.")
        st.button("Send again", key="retry", type="primary")
