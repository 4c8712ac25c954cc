"""The organiser area (``?area=organiser``, password ``$RLCOMPOSER_ADMIN_PASSWORD``).

Reached without signing in as a rater. Studies (create, progress, close, their
addresses), the dashboard (people and simulated raters apart), the pool with its
aggregates and downloads, and the experiments. UI only: everything is computed
by :mod:`rlcomposer.feedback`.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from feedback_ui import made_for_you
from feedback_ui.settings import AppSettings
from feedback_ui.widgets import melody_view, svg_image
from rlcomposer.feedback import statistics as feedback_statistics
from rlcomposer.feedback import study_statistics
from rlcomposer.feedback.experiment_stats import experiment_summaries, latest_reward_model_path
from rlcomposer.feedback.export import export_bytes
from rlcomposer.feedback.store import FeedbackError, FeedbackStore
from rlcomposer.feedback.study import (
    DEFAULT_CONSENT,
    StudySelection,
    StudySpec,
    close_study,
    create_study,
    list_studies,
    rater_link,
    reopen_study,
    study_progress,
)
from rlcomposer.preferences.reward_model_cache import load_reward_model_cached


def organiser_area(store: FeedbackStore, settings: AppSettings) -> None:
    state = st.session_state
    st.title("Organiser area")
    if settings.admin_password is None:
        st.info("The organiser area is closed: set RLCOMPOSER_ADMIN_PASSWORD to open it.")
        return
    if not state.get("is_admin"):
        with st.form("admin"):
            password = st.text_input("Organiser password", type="password")
            if st.form_submit_button("Open the organiser area", type="primary"):
                if settings.admin_password_ok(password):
                    state["is_admin"] = True
                    st.rerun()
                st.error("Wrong organiser password.")
        return
    # the default study (the app's plain address) is made when a rater first opens it, not here
    studies, dashboard, pool, experiments = st.tabs(["Studies", "Dashboard", "Pool", "Experiments"])
    with studies:
        studies_tab(store)
    with dashboard:
        dashboard_tab(store)
    with pool:
        pool_tab(store, settings)
    with experiments:
        experiments_section(store)


# ------------------------------------------------------------------ studies
def _base_url() -> str:
    try:
        return st.context.url.split("?")[0].rstrip("/")
    except Exception:  # noqa: BLE001 - older Streamlit or a test without a browser
        return "http://localhost:8501"


def studies_tab(store: FeedbackStore) -> None:
    st.subheader("Studies")
    rows = []
    for study in reversed(list_studies(store)):  # the newest first
        progress = study_progress(store, study)
        simulated = study_progress(store, study, "simulated")
        rows.append({"study": study.name, "status": study.status, "mode": study.spec.mode,
                     "pool tags": ", ".join(study.spec.pool_tags) or "(whole pool)",
                     "target": study.spec.items_per_rater, "people": progress.raters,
                     "completed": progress.completed, "answers": progress.answers, "skips": progress.skips,
                     "simulated answers": simulated.answers,
                     "address": f"{_base_url()}/?study={study.name}"})
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key="studies_table")
        names = [r["study"] for r in rows]
        chosen = st.selectbox("Study", names, index=0, key="organiser_study")  # the newest
        row = rows[names.index(chosen)]
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("People", row["people"])
        c2.metric("Completed", f"{row['completed']} of {row['people']}" if row["people"] else "0",
                  help=f"reached {row['target']} answers")
        c3.metric("Answers", row["answers"], help=f"{row['skips']} skips, not counted")
        st.code(row["address"], language=None)
        study = next(s for s in list_studies(store) if s.name == chosen)
        made_for_you.organiser_section(store, study)
        if study.spec.selection == "active":
            selection = StudySelection(study, load_reward_model_cached, latest_reward_model_path)
            strategy = selection.strategy(store)
            if selection.note:
                st.warning(f"Active selection is OFF (pairs are random): {selection.note}")
            else:
                st.caption(f"Pairs: active selection ({type(strategy).__name__}) with the reward model "
                           f"{study.spec.reward_model}.")
        with st.form("new_link"):
            st.caption("A rater lost their personal link? Make a new one (their old link stops working).")
            lost = st.text_input("Rater name", key="new_link_rater")
            if st.form_submit_button("New link for this rater"):
                try:
                    link = rater_link(store, chosen, lost.strip(), _base_url())
                except FeedbackError as error:
                    st.error(f"No new link: {error}")
                else:
                    st.success(f"New link of {lost.strip()} (send it to them; the old one no longer works):")
                    st.code(link, language=None)
        if row["status"] == "open":
            if st.button("Close this study", key="close_study"):
                close_study(store, chosen)
                st.rerun()
        elif st.button("Reopen this study", key="reopen_study"):
            reopen_study(store, chosen)
            st.rerun()
    else:
        st.caption("No studies yet: create one below (or with `rlcomposer study create`).")
    tags = [t for t, _ in store.tags()]
    with st.expander("Create a study", expanded=not rows):
        with st.form("create_study"):
            name = st.text_input("Name (used in the address)", key="new_study_name")
            pool_tags = st.multiselect("Pool tags", tags, key="new_study_tags")
            mode = st.selectbox("Mode", ["pairs", "stars", "mixed-tags"], key="new_study_mode")
            items = st.number_input("Items per rater", 1, 10_000, 20, key="new_study_items")
            listen = st.slider("Share of each melody that must play before answering", 0.0, 1.0, 1.0, 0.05,
                               key="new_study_listen")
            instructions = st.text_area("Instructions", "", key="new_study_instructions",
                                        help="Empty: the mode's own instructions (a pairs study never mentions stars)")
            consent = st.text_input("Consent line", DEFAULT_CONSENT, key="new_study_consent")
            code = st.text_input("Completion code (optional)", key="new_study_code")
            reward = st.text_input("Active selection: reward model directory or 'latest' (optional)",
                                   key="new_study_reward")
            if st.form_submit_button("Create the study", type="primary"):
                try:
                    spec = StudySpec(name=name.strip(), pool_tags=tuple(pool_tags), mode=mode,
                                     items_per_rater=int(items), instructions=instructions, consent_text=consent,
                                     selection="active" if reward.strip() else "random",
                                     reward_model=reward.strip() or None, completion_code=code.strip() or None,
                                     listen_fraction=float(listen))
                    study = create_study(store, spec)
                except FeedbackError as error:
                    st.error(f"The study was not created: {error}")
                else:
                    st.success(f"Study {study.name} created: raters open {_base_url()}/?study={study.name}")


# ---------------------------------------------------------------- dashboard
def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def dashboard_tab(store: FeedbackStore) -> None:
    import pandas as pd

    kind_label = st.segmented_control("Raters", ["people", "simulated"], default="people", key="dash_kind") \
        or "people"
    kind = "person" if kind_label == "people" else "simulated"
    studies = list(reversed(list_studies(store)))  # the newest first
    names = ["(all studies)"] + [s.name for s in studies]
    chosen = st.selectbox("Study", names, key="dash_study")
    study_id = None if chosen == names[0] else next(s.id for s in studies if s.name == chosen)
    rows = study_statistics.answers_of_kind(store, kind, study_id)
    counts = study_statistics.answer_counts(rows)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"{kind_label.capitalize()}", counts["raters"])
    c2.metric("Star ratings", counts["stars"])
    c3.metric("Comparisons", counts["comparisons"])
    c4.metric("Skips", counts["skips"], help="not answers: left out of the charts")
    chart = st.segmented_control("Chart", ["cumulative", "per hour"], default="cumulative", key="dash_chart") \
        or "cumulative"
    for by in ("rater", "tag"):
        st.markdown(f"**Answers per {by}, {chart} (UTC hours{'; a pair of two tags counts for each' if by == 'tag' else ''})**")
        series = study_statistics.activity_series(rows, by, cumulative=chart == "cumulative")
        if series:
            frame = pd.DataFrame(series).pivot_table(index="hour", columns=by, values="count", fill_value=0)
            # a line needs two hours to show; one hour (a short study) is drawn as bars
            (st.line_chart if chart == "cumulative" and len(frame) > 1 else st.bar_chart)(frame)
        else:
            st.caption(f"No answers by {kind_label} yet.")
    st.subheader("Agreement")
    summary = study_statistics.agreement_summary(store, rows)
    a1, a2, a3 = st.columns(3)
    a1.metric("Pairs: same answer", _percent(summary.pair_agreement), help=f"n = {summary.pair_n} pairs of judgements")
    a2.metric("Stars: within one star", _percent(summary.star_within_one), help=f"n = {summary.star_n} pairs of ratings")
    a3.metric("Self-consistency on repeats", _percent(summary.repeat_consistency),
              help=f"n = {summary.repeat_n} repeats")
    a1.caption(f"n = {summary.pair_n}")
    a2.caption(f"n = {summary.star_n}")
    a3.caption(f"n = {summary.repeat_n}")
    for what, reason in summary.reasons.items():
        st.caption(f"{what.capitalize()}: empty because {reason}.")
    st.subheader("Win-rate of each tag against each other tag (A/B), with 95% intervals")
    rates = study_statistics.win_rates_with_intervals(rows)
    if rates:
        st.dataframe([{"tag": r["tag"], "against": r["against"], "win-rate": f"{100 * r['win_rate']:.0f}%",
                       "95% interval": f"{100 * r['low_95']:.0f}–{100 * r['high_95']:.0f}%",
                       "comparisons": r["comparisons"]} for r in rates], hide_index=True, width="stretch",
                     key="dash_rates")
    else:
        st.caption(f"No comparisons between different tags by {kind_label} yet.")
    st.subheader("Download all answers")
    d1, d2 = st.columns(2)
    d1.download_button("CSV", export_bytes(store, "csv"), "ratings.csv", "text/csv", key="dl_csv")
    d2.download_button("JSONL", export_bytes(store, "jsonl"), "ratings.jsonl", "application/x-ndjson",
                       key="dl_jsonl")


# --------------------------------------------------------------------- pool
def pool_tab(store: FeedbackStore, settings: AppSettings) -> None:
    tags = [t for t, _ in store.tags()]
    tag = st.selectbox("Tag", ["(all)"] + tags, key="listen_tag")
    rows = feedback_statistics.browse_melodies(store, tag=None if tag == "(all)" else tag)
    if not rows:
        st.info("No melody matches.")
        return
    st.dataframe([{"melody": r.id, "tag": r.tag, "model": r.model, "metre": r.metre, "key": r.key,
                   "pick-up (16ths)": str(r.pickup_steps), "ratings": r.num_ratings,
                   "mean stars": "" if r.mean_stars is None else round(r.mean_stars, 2),
                   "comparisons": r.comparisons, "wins": r.wins} for r in rows],
                 hide_index=True, width="stretch", key="pool_table")
    chosen = st.selectbox("Melody", [r.id for r in rows], key="listen_melody")
    try:
        record = store.get_melody(chosen)
    except FeedbackError as error:
        st.error(f"This melody cannot be shown: {error}")
        return
    view = melody_view(record.melody, settings.tempo_bpm)
    st.audio(view.wav, format="audio/wav")
    svg_image(view.score_svg, f"score {chosen}")
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("MIDI", record.melody.to_midi_bytes(settings.tempo_bpm), f"melody-{chosen}.mid",
                       "audio/midi", key="dl_midi")
    c2.download_button("MusicXML", record.melody.to_musicxml_bytes(settings.tempo_bpm),
                       f"melody-{chosen}.musicxml", "application/vnd.recordare.musicxml+xml", key="dl_xml")
    c3.download_button("ABC", record.melody.to_abc(title=f"melody {chosen}"), f"melody-{chosen}.abc", "text/vnd.abc",
                       key="dl_abc")
    c4.download_button("WAV", view.wav, f"melody-{chosen}.wav", "audio/wav", key="dl_wav")


# -------------------------------------------------------------- experiments
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
                c1, c2, c3, c4 = st.columns(4)
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
        table: list[dict[str, Any]] = [
            {"round pool": r.tuned_tag, "tuned policy": r.policy, "against": r.prior_tag,
             "people's win-rate": _percent(r.win_rate), "comparisons": r.comparisons, "wins": r.wins,
             "ties": r.ties, "losses": r.losses, "skips": r.skips, "people": r.raters} for r in rounds]
        st.dataframe(table, hide_index=True, width="stretch")
        if all(r.comparisons == 0 for r in rounds):
            last = rounds[-1]
            st.caption("Tuned policy vs prior: no people's comparisons yet (no data yet). To collect them, create "
                       f"a study: `rlcomposer study create {name}-verdict --mode mixed-tags "
                       f"--tags {last.tuned_tag},{last.prior_tag}`.")
