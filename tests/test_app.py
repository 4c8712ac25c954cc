"""The rating app, page by page and flow by flow, with Streamlit's AppTest.

The listening player is a custom component (it runs only in a browser): here its
reported value is put into the session as the browser would send it
(``hear(at)``); tests/test_browser.py plays real audio in chromium.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rlcomposer.feedback import database
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.store import FeedbackStore, new_client_id, open_store
from rlcomposer.feedback.study import StudySpec, close_study, create_study, get_study
from rlcomposer.music.melody import random_melody

APP = str(Path(__file__).resolve().parent.parent / "feedback_app" / "app.py")
ENV = ("RLCOMPOSER_ACCESS_CODE", "RLCOMPOSER_ADMIN_PASSWORD", "RLCOMPOSER_POOL_TAGS", "RLCOMPOSER_REPEAT_SHARE",
       "RLCOMPOSER_TEMPO_BPM", "RLCOMPOSER_MIX_TAGS", "RLCOMPOSER_ACTIVE_REWARD", "RLCOMPOSER_STUDY_MODE",
       "RLCOMPOSER_ITEMS_PER_RATER", "RLCOMPOSER_LISTEN_FRACTION")


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", url)
    monkeypatch.setenv("RLCOMPOSER_REPEAT_SHARE", "0")
    store = open_store(url)
    rng = np.random.default_rng(0)
    store.add_melodies([random_melody(rng, 32) for _ in range(3)], "prior", model="prior")
    store.add_melodies([random_melody(rng, 32) for _ in range(2)], "tuned", model="tuned")
    yield store
    database.dispose_engine(url)


@pytest.fixture
def stars(db):
    create_study(db, StudySpec(name="stars-study", mode="stars", items_per_rater=3, completion_code="FOLK-42",
                               repeat_share=0.0, listen_fraction=0.5))
    return db


@pytest.fixture
def pairs(db):
    create_study(db, StudySpec(name="pair-study", pool_tags=("prior", "tuned"), mode="pairs", items_per_rater=4,
                               repeat_share=0.0, listen_fraction=0.5))
    return db


def start(study: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if study:
        at.query_params["study"] = study
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def signed_in(name: str = "Ann", study: str | None = None) -> AppTest:
    at = start(study)
    at.text_input[0].input(name)
    at.checkbox[0].check()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def hear(at: AppTest, ms: int = 60_000) -> AppTest:
    """What the browser's players report once the item's melodies have played."""
    entry = at.session_state["pending"]
    for label in ("melody",) if entry["kind"] == "single" else ("A", "B"):
        at.session_state[f"player-{label}"] = {"item": entry["client_id"], "played_ms": ms, "heard": True}
    return at.run()


def token_of(at: AppTest) -> str:
    """The token in the page's URL (the rater's personal link)."""
    value = at.query_params["token"]
    return value if isinstance(value, str) else value[0]


def buttons(at: AppTest, prefix: str):
    return [b for b in at.button if b.key and b.key.startswith(prefix)]


def texts(at: AppTest) -> str:
    return " ".join(str(m.value) for m in list(at.markdown) + list(at.caption) if "<img" not in str(m.value))


def progress_text(at: AppTest) -> str:
    return " ".join(str(p.proto.text) for p in at.get("progress"))


def mine(store: FeedbackStore, name: str):
    rater = store.find_rater(name)
    return [r for r in store.ratings() if r.rater_id == rater.id], [c for c in store.comparisons() if c.rater_id == rater.id]


# ------------------------------------------------------------------ sign-in
def test_sign_in_asks_for_name_and_consent_and_gives_a_personal_link(stars):
    at = start("stars-study")
    assert not at.exception
    assert "Rate melodies" in at.title[0].value
    at.text_input[0].input("Ann")
    at.button[0].click().run()
    assert "consent" in at.warning[0].value
    at.text_input[0].input("")
    at.checkbox[0].check()
    at.button[0].click().run()
    assert "rater name" in at.error[0].value
    assert stars.raters() == []
    at.text_input[0].input("Ann")
    at.button[0].click().run()
    assert "0 of 3" in progress_text(at)
    assert len(token_of(at)) >= 24  # the personal link
    ann = stars.find_rater("Ann")
    assert ann is not None and ann.consented


def test_a_wrong_access_code_keeps_people_out(stars, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_ACCESS_CODE", "folk2024")
    at = start("stars-study")
    at.text_input[0].input("Ann")
    at.text_input[1].input("guess")
    at.checkbox[0].check()
    at.button[0].click().run()
    assert "Wrong access code" in at.error[0].value
    assert stars.raters() == []
    at.text_input[1].input("folk2024")
    at.button[0].click().run()
    assert not at.error and stars.find_rater("Ann") is not None


def test_a_reload_signs_the_rater_back_in_with_the_count_kept(stars):
    at = hear(signed_in(study="stars-study"))
    buttons(at, "answer-stars-4-")[0].click().run()
    assert "1 of 3" in progress_text(at)
    token = token_of(at)
    reloaded = start("stars-study", token=token)  # a new browser session with the same URL
    assert not reloaded.exception and not reloaded.error
    assert "1 of 3" in progress_text(reloaded)
    assert any("Welcome back, Ann: 1 answered" in t.proto.body.replace("\\", "") for t in reloaded.get("toast"))
    first = at.session_state["pending"]["melody_ids"]
    assert reloaded.session_state["pending"]["melody_ids"] != mine(stars, "Ann")[0][0].melody_id or first


def test_a_name_alone_never_opens_someone_elses_history(stars):
    hear_at = hear(signed_in("Keyboard Kim", study="stars-study"))
    buttons(hear_at, "answer-stars-2-")[0].click().run()
    other = start("stars-study")
    other.text_input[0].input("keyboard kim ")  # the same name, trimmed and case-folded
    other.checkbox[0].check()
    other.button[0].click().run()
    assert "already taken" in other.error[0].value.replace("\\", "")
    assert "rater" not in other.session_state
    assert len(stars.raters()) == 1


def test_a_tampered_token_says_so_and_offers_sign_in(stars):
    at = start("stars-study", token="x" * 32)
    assert not at.exception
    assert "not valid" in at.error[0].value
    assert at.button[0].label == "Start rating"
    assert "rater" not in at.session_state


def test_a_name_with_markdown_is_shown_as_plain_text(stars):
    at = signed_in("[click me](http://evil.example)", study="stars-study")
    shown = " ".join(c.value for c in at.caption if "Signed in as" in c.value)
    assert "\\[click me\\]\\(http" in shown  # escaped: Streamlit renders it as text, not as a link


# -------------------------------------------------------------------- stars
def test_rating_needs_listening_stores_one_row_with_listened_ms_and_moves_on(stars):
    at = signed_in(study="stars-study")
    assert all(b.disabled for b in buttons(at, "answer-stars-"))  # not played yet: the answers are closed
    first = dict(at.session_state["pending"])
    at = hear(at, 5200)
    assert not any(b.disabled for b in buttons(at, "answer-stars-"))
    buttons(at, "answer-stars-4-")[0].click().run()
    [rating] = stars.ratings()
    assert (rating.stars, rating.melody_id, rating.client_id) == (4, first["melody_ids"][0], first["client_id"])
    assert rating.listened_ms == 5200 and rating.answer_ms is not None
    assert rating.study_id == get_study(stars, "stars-study").id
    assert any("Saved" in t.proto.body for t in at.get("toast"))
    assert at.session_state["pending"]["melody_ids"] != first["melody_ids"]


def test_an_answer_before_playback_is_refused(stars):
    at = hear(signed_in(study="stars-study"))
    entry = at.session_state["pending"]
    # a crafted click: the page shows open buttons, but the player reported 10 ms of playback
    at.session_state["player-melody"] = {"item": entry["client_id"], "played_ms": 10, "heard": False}
    buttons(at, "answer-stars-5-")[0].click().run()
    assert stars.ratings() == []
    assert "play the melody" in at.error[0].value


def test_the_study_ends_with_a_completion_screen_and_code(stars):
    at = signed_in(study="stars-study")
    for stars_given in (5, 3, 1):
        at = hear(at)
        buttons(at, f"answer-stars-{stars_given}-")[0].click().run()
    assert "Thank you" in at.header[0].value
    assert "FOLK-42" in [c.value for c in at.code]
    assert "3 of 3" in progress_text(at)
    assert [r.stars for r in stars.ratings()] == [5, 3, 1]
    assert len({r.melody_id for r in stars.ratings()}) == 3


def test_a_double_submit_stores_one_rating(stars):
    at = hear(signed_in(study="stars-study"))
    entry = dict(at.session_state["pending"])
    buttons(at, "answer-stars-5-")[0].click().run()
    at.session_state["pending"] = dict(entry)  # the second click of a double click: same item, same id
    at = hear(at)
    buttons(at, "answer-stars-5-")[0].click().run()
    assert len(stars.ratings()) == 1 and not at.error


def test_two_tabs_answering_the_same_item_store_it_once(stars):
    first = hear(signed_in(study="stars-study"))
    second = start("stars-study", token=token_of(first))
    entry = dict(first.session_state["pending"], client_id=new_client_id())
    second.session_state["pending"] = entry  # the other tab shows the same melody
    second = hear(second)
    buttons(first, "answer-stars-2-")[0].click().run()
    buttons(second, "answer-stars-4-")[0].click().run()
    assert [r.stars for r in stars.ratings()] == [2]
    assert "already answered" in second.error[0].value


# -------------------------------------------------------------------- pairs
def test_a_pair_has_each_answer_under_its_melody_and_records_the_sides(pairs):
    at = hear(signed_in(study="pair-study"))
    entry = dict(at.session_state["pending"])
    keys = [b.key.rsplit("-", 1)[0] for b in buttons(at, "answer-")]
    assert keys == ["answer-left", "answer-right", "answer-tie", "answer-skip"]
    assert [b.label for b in buttons(at, "answer-")] == ["A is better", "B is better", "About the same", "Skip"]
    buttons(at, "answer-left-")[0].click().run()  # "A is better"
    [comparison] = pairs.comparisons()
    assert comparison.shown_left == entry["shown_left"]
    assert tuple(entry["melody_ids"]) == (comparison.melody_a_id, comparison.melody_b_id)
    left = entry["melody_ids"][0] if entry["shown_left"] == "a" else entry["melody_ids"][1]
    assert comparison.winner_id == left  # A = the melody shown on the left
    assert comparison.listened_ms == 120_000  # both players' time
    at = hear(at)
    buttons(at, "answer-tie-")[0].click().run()
    assert [c.choice for c in pairs.comparisons()] == [comparison.choice, "tie"]
    assert "2 of 4" in progress_text(at)


def test_skips_are_shown_apart_and_do_not_count_as_answers(pairs):
    at = signed_in(study="pair-study")
    sides = set()
    for _ in range(3):
        sides.add(at.session_state["pending"]["shown_left"])
        buttons(at, "answer-skip-")[0].click().run()  # skipping needs no listening
    assert "0 of 4" in progress_text(at) and "3 skipped" in progress_text(at)
    assert [c.choice for c in pairs.comparisons()] == ["skip"] * 3


def test_my_answers_show_what_i_clicked(pairs):
    bob = pairs.sign_in("Bob")
    ids = pairs.melody_ids()
    pairs.submit_comparison(new_client_id(), bob.id, ids[0], ids[1], "a", "a")
    at = hear(signed_in("Ann", study="pair-study"))
    buttons(at, "answer-right-")[0].click().run()
    at.segmented_control(key="page").set_value("My answers").run()
    frame = at.dataframe[0].value
    assert list(frame["your answer"]) == ["B (right)"]
    assert not frame.isna().any().any()
    assert len(at.get("audio")) == 2


# ------------------------------------------------------------ studies
def test_an_unknown_or_closed_study_or_an_empty_pool_says_so(db):
    at = start("no-such-study")
    assert "There is no study called" in at.error[0].value and not at.exception
    create_study(db, StudySpec(name="done", pool_tags=("prior",)))
    close_study(db, "done")
    assert "is closed" in start("done").info[0].value
    db.create_study("empty", pool_tags=["gone"], mode="pairs", items_per_rater=3, instructions="", consent_text="",
                    selection="random", listen_fraction=0.0, repeat_share=0.0)  # its tag has no melodies
    assert "cannot start" in start("empty").error[0].value
    assert db.raters() == []


def test_the_default_study_follows_the_settings(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_POOL_TAGS", "tuned")
    monkeypatch.setenv("RLCOMPOSER_STUDY_MODE", "stars")
    monkeypatch.setenv("RLCOMPOSER_ITEMS_PER_RATER", "2")
    monkeypatch.setenv("RLCOMPOSER_LISTEN_FRACTION", "0")
    at = signed_in()
    assert not any(b.disabled for b in buttons(at, "answer-stars-"))  # no listening required
    for _ in range(2):
        buttons(at, "answer-stars-3-")[0].click().run()
    assert {db.get_melody(r.melody_id).tag for r in db.ratings()} == {"tuned"}
    assert "Thank you" in at.header[0].value


# ------------------------------------------------------------ outages
def test_an_answer_given_while_the_database_is_down_is_kept_and_sent_when_it_is_back(stars, monkeypatch):
    at = hear(signed_in(study="stars-study"))
    entry = dict(at.session_state["pending"])

    def down(*args, **kwargs):
        raise DatabaseUnavailable("database sqlite:///x is unavailable (connection refused)")

    real = {name: getattr(FeedbackStore, name) for name in ("submit_rating", "get_melodies", "count_submissions",
                                                            "melody_ids", "get_study")}
    for name in real:  # every read and write fails, not only the submit
        monkeypatch.setattr(FeedbackStore, name, down)
    buttons(at, "answer-stars-2-")[0].click().run()
    assert not at.exception
    assert "not saved yet" in at.error[0].value and "Nothing you entered is lost" in at.error[0].value
    assert [b.label for b in at.button] == ["Send again"]
    at.button(key="resend").click().run()  # still down: still kept
    assert at.error and stars.ratings() == []
    for name, method in real.items():
        monkeypatch.setattr(FeedbackStore, name, method)
    at.run()  # the next rerun sends it by itself
    assert not at.error
    [rating] = stars.ratings()
    assert (rating.stars, rating.client_id, rating.listened_ms) == (2, entry["client_id"], 60_000)


def test_a_sqlite_file_deleted_mid_session_takes_no_answers_into_the_void(stars):
    at = hear(signed_in(study="stars-study"))
    path = Path(database.sqlite_path(stars.url))
    moved = path.with_suffix(".moved")
    path.rename(moved)
    buttons(at, "answer-stars-3-")[0].click().run()
    shown = at.error[0].value
    assert "not reachable" in shown and not path.exists()
    assert path.name not in shown and "sqlite" not in shown  # the database's address is not for raters
    moved.rename(path)  # the file is back
    at.button(key="resend").click().run()
    assert [r.stars for r in stars.ratings()] == [3]


def test_a_file_that_is_not_a_database_gives_one_clear_line(tmp_path, monkeypatch):
    bad = tmp_path / "notes.sqlite3"
    bad.write_text("these are my notes, not a database\n" * 50)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", f"sqlite:///{bad}")
    at = start()
    assert not at.exception
    assert "cannot be used" in at.error[0].value and "not a SQLite database" in at.error[0].value


def test_an_unreachable_database_gives_a_clear_message(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    at = start()
    assert not at.exception
    assert "not reachable" in at.error[0].value


def test_a_misconfigured_app_says_which_setting(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_REPEAT_SHARE", "lots")
    at = start()
    assert "RLCOMPOSER_REPEAT_SHARE" in at.error[0].value


# ---------------------------------------------------------------- organiser
def test_the_organiser_area_is_closed_without_a_password_setting(db):
    at = start(area="organiser")
    assert "RLCOMPOSER_ADMIN_PASSWORD" in at.info[0].value


def test_the_organiser_reaches_studies_and_dashboard_without_becoming_a_rater(pairs, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_ADMIN_PASSWORD", "s3cret")
    ann, sim = pairs.sign_in("Ann"), pairs.sign_in("sim:lyrical", kind="simulated")
    study = get_study(pairs, "pair-study")
    prior, tuned = pairs.melody_ids(["prior"]), pairs.melody_ids(["tuned"])
    pairs.submit_comparison(new_client_id(), ann.id, prior[0], tuned[0], "b", "a", study_id=study.id)
    pairs.submit_comparison(new_client_id(), sim.id, prior[1], tuned[1], "a", "a", study_id=study.id)
    at = start(area="organiser")
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert "Wrong organiser password" in at.error[0].value
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert not at.exception and not at.error
    studies = at.dataframe[0].value
    row = studies[studies["study"] == "pair-study"].iloc[0]
    assert (row["people"], row["answers"], row["simulated answers"]) == (1, 1, 1)
    [rates] = [d.value for d in at.dataframe if "95% interval" in d.value.columns]  # people only by default
    assert set(zip(rates["tag"], rates["win-rate"], strict=True)) == {("prior", "0%"), ("tuned", "100%")}
    assert all("–" in interval for interval in rates["95% interval"])
    assert any("empty because no pair of melodies has been judged by two different raters" in c.value
               for c in at.caption)
    assert [b.label for b in at.get("download_button")][:2] == ["CSV", "JSONL"]
    assert len(pairs.raters()) == 2  # the organiser is no rater


def test_the_organiser_creates_a_study(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_ADMIN_PASSWORD", "s3cret")
    at = start(area="organiser")
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    at.text_input(key="new_study_name").input("spring")
    at.multiselect(key="new_study_tags").select("tuned")
    at.text_input(key="new_study_code").input("DONE-1")
    [submit] = [b for b in at.button if b.label == "Create the study"]
    submit.click().run()
    assert "Study spring created" in at.success[0].value
    study = get_study(db, "spring")
    assert study.spec.pool_tags == ("tuned",) and study.spec.completion_code == "DONE-1"


# ------------------------------------------------------- issue 18: an honest study
def test_a_reload_keeps_the_item_on_screen_and_what_has_played_of_it(pairs):
    at = signed_in(study="pair-study")
    entry = dict(at.session_state["pending"])
    at.session_state["player-A"] = {"item": entry["client_id"], "played_ms": 4100, "heard": False}
    at.run()
    reloaded = start("pair-study", token=token_of(at))  # a new browser session: same item, its listening kept
    kept = reloaded.session_state["pending"]
    assert (kept["client_id"], kept["melody_ids"], kept["shown_left"]) == (
        entry["client_id"], entry["melody_ids"], entry["shown_left"])
    assert kept["played"] == {"A": 4100, "B": 0}
    hear(reloaded)
    buttons(reloaded, "answer-left-")[0].click().run()
    [comparison] = pairs.comparisons()
    assert comparison.client_id == entry["client_id"] and comparison.listened_ms == 2 * 60_000
    again = start("pair-study", token=token_of(at))  # answered: the next reload shows a new item
    assert again.session_state["pending"]["client_id"] != entry["client_id"]


def test_a_melody_heard_in_full_before_needs_no_listening_again(pairs):
    at = hear(signed_in(study="pair-study"))
    heard_ids = set(at.session_state["pending"]["melody_ids"])
    assert pairs.heard_melody_ids(pairs.find_rater("Ann").id) == heard_ids
    entry = at.session_state["pending"]
    at.session_state["pending"] = dict(entry, client_id=new_client_id(), shown_at=None)  # the same melodies again
    at.run()
    assert not any(b.disabled for b in buttons(at, "answer-left-"))  # heard before: open without playing


def test_a_closed_default_study_refuses_sign_in_at_the_plain_address(db):
    start()  # the first visit makes the default study from the app's settings
    close_study(db, "default")
    at = start()
    assert "is closed" in at.info[0].value and not [t for t in at.text_input]
    assert db.raters() == []


def test_a_study_named_default_keeps_its_settings_when_the_app_loads(db, monkeypatch):
    create_study(db, StudySpec(name="default", pool_tags=("tuned",), mode="stars", items_per_rater=2,
                               instructions="Only the tuned ones, in stars."))
    monkeypatch.setenv("RLCOMPOSER_STUDY_MODE", "pairs")
    monkeypatch.setenv("RLCOMPOSER_ITEMS_PER_RATER", "9")
    at = start()
    assert any("Only the tuned ones" in m.value for m in at.markdown)
    study = get_study(db, "default")
    assert (study.spec.mode, study.spec.items_per_rater, study.spec.pool_tags) == ("stars", 2, ("tuned",))


def test_the_organiser_opens_on_the_newest_study_without_making_a_default_one(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_ADMIN_PASSWORD", "s3cret")
    create_study(db, StudySpec(name="older", pool_tags=("prior",)))
    create_study(db, StudySpec(name="newest", pool_tags=("tuned",)))
    at = start(area="organiser")
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert at.selectbox(key="organiser_study").value == "newest"
    assert [s["name"] for s in db.studies()] == ["older", "newest"]  # no automatic default study
    lost = db.register_rater("Lost Lou")[0]
    at.text_input(key="new_link_rater").input("lost lou")
    [submit] = [b for b in at.button if b.label == "New link for this rater"]
    submit.click().run()
    link = [c.value for c in at.code if "token=" in c.value][0]
    assert "?study=newest&token=" in link
    assert db.sign_in_with_token(link.split("token=")[1]).id == lost.id


def test_the_outage_message_never_shows_the_database_address(stars, monkeypatch):
    at = hear(signed_in(study="stars-study"))

    def down(*args, **kwargs):
        raise DatabaseUnavailable(f"database {stars.url} is unavailable (connection refused)")

    for name in ("submit_rating", "count_submissions", "get_melodies", "current_item", "save_current_item"):
        monkeypatch.setattr(FeedbackStore, name, down)
    buttons(at, "answer-stars-2-")[0].click().run()
    shown = " ".join(e.value for e in at.error)
    assert "not reachable" in shown and "sqlite" not in shown and "app.sqlite3" not in shown
