"""The app's pages: sign-in, rating, my ratings, listening, dashboard.

Session state (per browser tab):

* ``rater`` / ``session_id``: who is signed in, and their rating session;
* ``pending[kind]``: the item on screen for ``single`` (stars) or ``pair`` (A/B),
  with its submission id (made when it was first shown), the side each melody of
  a pair is shown on, and when it was shown;
* ``upcoming[kind]``: the next item, chosen and rendered ahead of time;
* ``unsent``: an answer the database could not take yet (kept; "Send again").
"""

from __future__ import annotations

import random
import time
from typing import Any

import streamlit as st

from feedback_ui.settings import AppSettings, load_settings
from feedback_ui.widgets import melody_view, show_melody
from rlcomposer.errors import RLComposerError
from rlcomposer.feedback import statistics as feedback_statistics
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.experiment_stats import (
    experiment_summaries,
    latest_reward_model_path,
)
from rlcomposer.feedback.export import export_bytes
from rlcomposer.feedback.selection import (
    ActiveSelection,
    CrossTagSelection,
    Item,
    RandomSelection,
    SelectionStrategy,
)
from rlcomposer.feedback.store import FeedbackError, FeedbackStore, new_client_id, open_store
from rlcomposer.preferences.reward_model_cache import load_reward_model_cached

PAGES = ("Rate", "My ratings", "Listen", "Dashboard")
KIND_LABELS = {"single": "One melody (stars)", "pair": "Two melodies (A or B)"}
INSTRUCTIONS = """
**How it works.** You will hear short melodies written by a computer. Listen to each
one (press play), then say how much you like it: **1 to 5 stars** for one melody, or
which of **two melodies (A or B)** you prefer. There are no right answers: we want
*your* taste. Your answers teach the composer what listeners like.
"""
CONSENT = ("I agree that my ratings (with my rater name, not my identity) are stored and used "
           "to train and evaluate melody models.")


# ------------------------------------------------------------------ helpers
@st.cache_resource(show_spinner="Opening the rating database...")
def _store(url: str) -> FeedbackStore:
    return open_store(url)  # migrates once per process


@st.cache_resource(show_spinner=False)
def _warm_up() -> bool:
    """Render one melody at start-up (imports, verovio's fonts), so the first rater does not wait."""
    from rlcomposer.feedback.presentation import prepare_melody_view
    from rlcomposer.music.melody import Melody

    prepare_melody_view(Melody([2 + 12, 1, 1, 1] * 4))
    return True


def _active_reward_dir(store: FeedbackStore | None, settings: AppSettings) -> str | None:
    """``RLCOMPOSER_ACTIVE_REWARD``: a directory, or ``latest`` (the newest reward model
    of the pool tags' experiment, as registered by ``rlcomposer experiment run``)."""
    if settings.active_reward != "latest" or store is None:
        return settings.active_reward
    return latest_reward_model_path(store, settings.tags)


def make_strategy(settings: AppSettings, store: FeedbackStore | None = None) -> SelectionStrategy:
    """The selection strategy of this browser session: pairs across the two pool tags
    (``RLCOMPOSER_MIX_TAGS``), active selection with a reward model
    (``RLCOMPOSER_ACTIVE_REWARD``; random when it cannot be loaded, which the
    dashboard reports), else random."""
    if settings.mix_tags:
        return CrossTagSelection(repeat_share=settings.repeat_share, tags=settings.tags)
    reward_dir = _active_reward_dir(store, settings) if settings.active_reward else None
    if reward_dir:
        try:
            return ActiveSelection(load_reward_model_cached(reward_dir), tags=settings.tags)
        except (RLComposerError, OSError, ValueError, RuntimeError):
            pass
    return RandomSelection(repeat_share=settings.repeat_share, tags=settings.tags)


def _selection_caption(settings: AppSettings, store: FeedbackStore | None = None) -> str:
    tags = ", ".join(settings.tags) or "the whole pool"
    if settings.mix_tags:
        return f"Pairs: one melody of each of {tags}."
    if settings.active_reward:
        reward_dir = _active_reward_dir(store, settings)
        if not reward_dir:
            return (f"Active selection is OFF (pairs are random from {tags}): no experiment of these "
                    "tags has a reward model yet")
        try:
            load_reward_model_cached(reward_dir)
        except (RLComposerError, OSError, ValueError, RuntimeError) as error:
            return f"Active selection is OFF (pairs are random from {tags}): {error}"
        return f"Pairs: active selection with the reward model {reward_dir}, from {tags}."
    return f"Pairs: at random from {tags}."


def _state() -> Any:
    state = st.session_state
    state.setdefault("pending", {})
    state.setdefault("upcoming", {})
    return state


def _entry(item: Item) -> dict[str, Any]:
    return {"kind": item.kind, "melody_ids": list(item.melody_ids), "is_repeat": item.is_repeat,
            "client_id": new_client_id(), "shown_left": random.choice("ab") if item.kind == "pair" else None,
            "shown_at": None}


def _item(entry: dict[str, Any]) -> Item:
    return Item(entry["kind"], tuple(entry["melody_ids"]), entry["is_repeat"])


def _choose(store: FeedbackStore, settings: AppSettings, kind: str) -> dict[str, Any] | None:
    state = _state()
    strategy = state.get("strategy")
    if strategy is None:
        strategy = state["strategy"] = make_strategy(settings, store)
    exclude = [_item(e) for e in list(state["pending"].values()) + list(state["upcoming"].values()) if e]
    item = strategy.next_item(store, state["rater"]["id"], kind, exclude=exclude)
    return None if item is None else _entry(item)


# ------------------------------------------------------------------ sign-in
def sign_in_page(store: FeedbackStore, settings: AppSettings) -> None:
    st.title("Rate melodies")
    st.markdown(INSTRUCTIONS)
    with st.form("sign_in"):
        name = st.text_input("Your rater name", max_chars=80, help="Any name you will use again next time.")
        code = st.text_input("Access code", type="password") if settings.access_code else ""
        consent = st.checkbox(CONSENT)
        submitted = st.form_submit_button("Start rating")
    if not submitted:
        return
    if not settings.access_code_ok(code):
        st.error("Wrong access code. Ask the person running the study for it.")
        return
    if not consent:
        st.warning("Please tick the consent box to take part.")
        return
    try:
        rater = store.sign_in(name)
        store.record_consent(rater.id)
        session_id = store.start_session(rater.id, client="streamlit")
    except FeedbackError as error:
        st.error(f"Cannot sign in: {error}")
        return
    state = _state()
    state["rater"] = {"id": rater.id, "name": rater.name}
    state["session_id"] = session_id
    st.rerun()


# -------------------------------------------------------------------- rating
def _submit(store: FeedbackStore, entry: dict[str, Any], answer: Any) -> bool:
    """Send an answer; True when stored (now or before). Keeps it in ``unsent`` when the database is down."""
    state = _state()
    rater_id, session_id = state["rater"]["id"], state["session_id"]
    answer_ms = None if entry["shown_at"] is None else max(0, int((time.time() - entry["shown_at"]) * 1000))
    try:
        if entry["kind"] == "single":
            store.submit_rating(entry["client_id"], rater_id, entry["melody_ids"][0], answer,
                                session_id=session_id, is_repeat=entry["is_repeat"], answer_ms=answer_ms)
        else:
            store.submit_comparison(entry["client_id"], rater_id, entry["melody_ids"][0],
                                    entry["melody_ids"][1], answer, entry["shown_left"],
                                    session_id=session_id, is_repeat=entry["is_repeat"], answer_ms=answer_ms)
    except DatabaseUnavailable as error:
        state["unsent"] = {"entry": entry, "answer": answer, "error": str(error)}
        return False
    except FeedbackError as error:
        state["pending"].pop(entry["kind"], None)
        state["refused"] = f"Your answer was not stored: {error}"
        return False
    state.pop("unsent", None)
    state["last_saved"] = entry["client_id"]
    upcoming = state["upcoming"].pop(entry["kind"], None)
    state["pending"][entry["kind"]] = upcoming
    return True


def _answer_label(entry: dict[str, Any], answer: Any) -> str:
    if entry["kind"] == "single":
        return f"{answer} star{'s' if answer != 1 else ''}"
    screen = {"tie": "a tie", "skip": "skip"}.get(answer)
    if screen:
        return screen
    return "A (left)" if answer == entry["shown_left"] else "B (right)"


def rate_page(store: FeedbackStore, settings: AppSettings) -> None:
    state = _state()
    st.header("Rate")
    if state.get("refused"):
        st.error(state.pop("refused"))
    unsent = state.get("unsent")
    if unsent:
        st.error(f"Could not save your answer ({_answer_label(unsent['entry'], unsent['answer'])}): "
                 f"{unsent['error']}. Your answer is kept; press Send again.")
        if st.button("Send again", key="resend", type="primary"):
            if _submit(store, unsent["entry"], unsent["answer"]):
                st.rerun()
            st.rerun()
        return
    kind = st.radio("What to rate", list(KIND_LABELS), format_func=KIND_LABELS.get, horizontal=True,
                    key="mode")
    entry = state["pending"].get(kind)
    if entry is None:
        entry = state["pending"][kind] = state["upcoming"].pop(kind, None) or _choose(store, settings, kind)
    if entry is None:
        st.success("You have rated every melody in the pool. Thank you!")
        return
    if entry["shown_at"] is None:
        entry["shown_at"] = time.time()
    try:
        records = store.get_melodies(entry["melody_ids"])
    except FeedbackError as error:
        state["pending"].pop(kind, None)
        st.error(f"This item cannot be shown ({error}); press Next.")
        st.button("Next", key="next-after-error")
        return
    if kind == "single":
        record = records[entry["melody_ids"][0]]
        st.caption("Listen, then rate it: 1 star = not at all, 5 stars = love it.")
        show_melody(record.melody, settings.tempo_bpm, "melody")
        columns = st.columns(5)
        for stars, column in zip(range(1, 6), columns, strict=True):
            if column.button(f"{stars} " + "★" * stars, key=f"stars-{stars}-{entry['client_id']}",
                             width="stretch"):
                _submit(store, entry, stars)
                st.rerun()
    else:
        a, b = (records[i] for i in entry["melody_ids"])
        left, right = (a, b) if entry["shown_left"] == "a" else (b, a)
        st.caption("Listen to both, then choose the one you like more.")
        col_left, col_right = st.columns(2)
        with col_left:
            st.subheader("A")
            show_melody(left.melody, settings.tempo_bpm, "A")
        with col_right:
            st.subheader("B")
            show_melody(right.melody, settings.tempo_bpm, "B")
        other = "b" if entry["shown_left"] == "a" else "a"
        answers = [("A is better", entry["shown_left"]), ("About the same", "tie"),
                   ("B is better", other), ("Skip", "skip")]
        for (label, answer), column in zip(answers, st.columns(4), strict=True):
            if column.button(label, key=f"pair-{answer}-{entry['client_id']}", width="stretch"):
                _submit(store, entry, answer)
                st.rerun()
    if entry["is_repeat"]:
        st.caption("(You may have heard this one before; please answer anyway.)")
    _prepare_next(store, settings, kind)


def _prepare_next(store: FeedbackStore, settings: AppSettings, kind: str) -> None:
    """Choose the next item now and render it into the cache, so it shows at once."""
    state = _state()
    if state["upcoming"].get(kind) is None:
        state["upcoming"][kind] = _choose(store, settings, kind)
    upcoming = state["upcoming"][kind]
    if upcoming is not None:
        for record in store.get_melodies(upcoming["melody_ids"]).values():
            melody_view(tuple(int(t) for t in record.melody.tokens), settings.tempo_bpm)


# ------------------------------------------------------------------- history
def history_page(store: FeedbackStore) -> None:
    state = _state()
    st.header("My ratings")
    rows = store.rater_history(state["rater"]["id"])
    if not rows:
        st.info("Nothing yet: your ratings appear here.")
        return
    st.dataframe([{"when": r["created_at"][:19].replace("T", " "), "what": r["kind"],
                   "melody": r["melody_id"], "other melody": r["melody_b_id"],
                   "stars": r["stars"], "choice": r["choice"]} for r in rows],
                 hide_index=True, width="stretch")


# -------------------------------------------------------------------- listen
def listen_page(store: FeedbackStore, settings: AppSettings) -> None:
    st.header("Listen")
    tags = [t for t, _ in store.tags()]
    tag = st.selectbox("Tag", ["(all)"] + tags, key="listen_tag")
    min_stars = st.slider("Mean stars at least", 0.0, 5.0, 0.0, 0.5, key="listen_min_stars")
    rows = feedback_statistics.browse_melodies(store, tag=None if tag == "(all)" else tag,
                                               min_mean_stars=min_stars if min_stars > 0 else None)
    if not rows:
        st.info("No melody matches.")
        return
    st.dataframe([{"melody": r.id, "tag": r.tag, "model": r.model, "ratings": r.num_ratings,
                   "mean stars": None if r.mean_stars is None else round(r.mean_stars, 2),
                   "comparisons": r.comparisons, "wins": r.wins} for r in rows],
                 hide_index=True, width="stretch")
    chosen = st.selectbox("Melody", [r.id for r in rows], key="listen_melody")
    record = store.get_melody(chosen)
    show_melody(record.melody, settings.tempo_bpm, f"melody {chosen}")
    view = melody_view(tuple(int(t) for t in record.melody.tokens), settings.tempo_bpm)
    c1, c2, c3 = st.columns(3)
    c1.download_button("MIDI", record.melody.to_midi_bytes(settings.tempo_bpm), f"melody-{chosen}.mid",
                       "audio/midi", key="dl_midi")
    c2.download_button("MusicXML", record.melody.to_musicxml_bytes(settings.tempo_bpm),
                       f"melody-{chosen}.musicxml", "application/vnd.recordare.musicxml+xml", key="dl_xml")
    c3.download_button("WAV", view.wav, f"melody-{chosen}.wav", "audio/wav", key="dl_wav")


# ----------------------------------------------------------------- dashboard
def dashboard_page(store: FeedbackStore, settings: AppSettings) -> None:
    state = _state()
    st.header("Dashboard")
    if settings.admin_password is None:
        st.info("The dashboard is closed: set RLCOMPOSER_ADMIN_PASSWORD to open it.")
        return
    if not state.get("is_admin"):
        with st.form("admin"):
            password = st.text_input("Admin password", type="password")
            if st.form_submit_button("Open the dashboard"):
                if settings.admin_password_ok(password):
                    state["is_admin"] = True
                    st.rerun()
                st.error("Wrong admin password.")
        return
    import pandas as pd

    counts = store.counts()
    for (label, value), column in zip(counts.items(), st.columns(len(counts)), strict=True):
        column.metric(label, value)
    for by in ("rater", "tag"):
        st.subheader(f"Ratings per {by} over time")
        activity = feedback_statistics.activity(store, by)
        if activity:
            frame = pd.DataFrame(activity).pivot_table(index="day", columns=by, values="count", fill_value=0)
            st.bar_chart(frame)
        else:
            st.caption("No ratings yet.")
    st.subheader("Agreement between raters")
    agreement = feedback_statistics.agreement(store)
    c1, c2 = st.columns(2)
    c1.metric("Pairs: same answer", "-" if agreement["pair_agreement"] is None
              else f"{100 * agreement['pair_agreement']:.0f}%", help=f"{agreement['pair_judgement_pairs']} pairs of judgements")
    c2.metric("Stars: within one star", "-" if agreement["star_within_one"] is None
              else f"{100 * agreement['star_within_one']:.0f}%", help=f"{agreement['star_judgement_pairs']} pairs of ratings")
    st.subheader("Self-consistency on repeats")
    consistency = feedback_statistics.self_consistency(store)
    if consistency:
        st.dataframe(consistency, hide_index=True, width="stretch")
    else:
        st.caption("No repeats answered yet.")
    st.subheader("Win-rate of each tag against each other tag (A/B)")
    rates = feedback_statistics.tag_win_rates(store)
    if rates:
        st.dataframe(rates, hide_index=True, width="stretch")
    else:
        st.caption("No comparisons between different tags yet.")
    st.caption(_selection_caption(settings, store))
    experiments_section(store)
    st.subheader("Download all ratings")
    d1, d2 = st.columns(2)
    d1.download_button("CSV", export_bytes(store, "csv"), "ratings.csv", "text/csv", key="dl_csv")
    d2.download_button("JSONL", export_bytes(store, "jsonl"), "ratings.jsonl", "application/x-ndjson",
                       key="dl_jsonl")


def _percent(value: float | None) -> str:
    return "no data yet" if value is None else f"{100 * value:.0f}%"


def experiments_section(store: FeedbackStore) -> None:
    """Per experiment: its latest reward model's accuracy on people's comparisons,
    and people's win-rate of each round's tuned policy against the prior."""
    st.subheader("Experiments")
    summaries = experiment_summaries(store)
    if not summaries:
        st.caption("No experiments yet: `rlcomposer experiment run` puts its pools and models here.")
        return
    for summary in summaries:
        name = summary.experiment
        st.markdown(f"#### {name}")
        model = summary.reward_model
        if model is None:
            st.caption("Reward model: none registered yet (no data yet).")
        elif model.ensemble is None:
            st.warning(f"No reward model of {name} can be loaded: {'; '.join(model.problems)}")
        else:
            accuracy = summary.accuracy or {}
            if not accuracy.get("comparisons"):
                st.caption(f"Reward model {model.name}: no people's comparisons of {name}'s melodies yet "
                           "(no data yet).")
            else:
                c1, c2, c3 = st.columns(3)
                c1.metric(f"Reward model (round {model.round}): accuracy on people", _percent(accuracy["accuracy"]),
                          help=f"{model.name}: agreement with people's A/B choices (ties and skips left out)")
                c2.metric("People's comparisons", f"{accuracy['decided']} decided, {accuracy['ties']} ties",
                          help=f"{accuracy['raters']} people; {accuracy['skips']} skips left out")
                c3.metric("Log-loss", "-" if accuracy["log_loss"] is None else f"{accuracy['log_loss']:.3f}",
                          help="ties count as ½; ln 2 = 0.693 is a coin flip")
            if model.problems:
                st.caption("Skipped: " + "; ".join(model.problems))
        rounds = summary.win_rates
        if not rounds:
            st.caption("Tuned policy vs prior: no pool of a tuned policy yet (no data yet).")
            continue
        st.dataframe([{"round pool": r.tuned_tag, "tuned policy": r.policy, "against": r.prior_tag,
                       "people's win-rate": _percent(r.win_rate), "comparisons": r.comparisons,
                       "wins": r.wins, "ties": r.ties, "losses": r.losses, "skips": r.skips,
                       "people": r.raters} for r in rounds], hide_index=True, width="stretch")
        if all(r.comparisons == 0 for r in rounds):
            last = rounds[-1]
            st.caption("Tuned policy vs prior: no people's comparisons yet (no data yet). To collect them, run "
                       f"the app with RLCOMPOSER_POOL_TAGS={last.tuned_tag},{last.prior_tag} and "
                       "RLCOMPOSER_MIX_TAGS=1.")


# ---------------------------------------------------------------------- main
def run() -> None:
    st.set_page_config(page_title="rlcomposer: rate melodies", page_icon="🎵", layout="wide")
    try:
        settings = load_settings()
    except RLComposerError as error:
        st.error(f"The app is misconfigured: {error}")
        st.stop()
    try:
        store = _store(settings.database_url)
    except DatabaseUnavailable as error:
        st.error(f"The rating database is not reachable right now ({error}). Please try again in a minute.")
        st.button("Try again", key="retry-open")
        st.stop()
    except RLComposerError as error:
        st.error(f"The rating database cannot be used: {error}")
        st.stop()
    _warm_up()
    state = _state()
    try:
        if "rater" not in state:
            sign_in_page(store, settings)
            return
        with st.sidebar:
            st.markdown(f"Signed in as **{state['rater']['name']}**")
            page = st.radio("Page", PAGES, key="page")
            try:
                done = store.count_submissions(state["rater"]["id"], state["session_id"])["total"]
                state["done"] = done
            except DatabaseUnavailable:
                done = state.get("done", 0)
            st.markdown(f"**{done}** rated this session")
            if st.button("Sign out", key="sign_out"):
                st.session_state.clear()
                st.rerun()
        if page == "Rate":
            rate_page(store, settings)
        elif page == "My ratings":
            history_page(store)
        elif page == "Listen":
            listen_page(store, settings)
        else:
            dashboard_page(store, settings)
    except DatabaseUnavailable as error:
        st.error(f"The rating database is not reachable right now ({error}). "
                 "Nothing you entered is lost; please try again in a moment.")
        st.button("Try again", key="retry")
