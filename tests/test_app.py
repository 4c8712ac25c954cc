"""The rating app, page by page and flow by flow, with Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rlcomposer.feedback import database
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.store import FeedbackStore, new_client_id, open_store
from rlcomposer.music.melody import random_melody

APP = str(Path(__file__).resolve().parent.parent / "feedback_app" / "app.py")


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    for name in ("RLCOMPOSER_ACCESS_CODE", "RLCOMPOSER_ADMIN_PASSWORD", "RLCOMPOSER_POOL_TAGS",
                 "RLCOMPOSER_REPEAT_SHARE", "RLCOMPOSER_TEMPO_BPM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", url)
    monkeypatch.setenv("RLCOMPOSER_REPEAT_SHARE", "0")
    store = open_store(url)
    rng = np.random.default_rng(0)
    store.add_melodies([random_melody(rng, 32) for _ in range(3)], "prior", model="prior")
    store.add_melodies([random_melody(rng, 32) for _ in range(2)], "tuned", model="tuned")
    yield store
    database.dispose_engine(url)


def start() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60).run()


def signed_in(name: str = "Ann") -> AppTest:
    at = start()
    at.text_input[0].input(name)
    at.checkbox[0].check()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def buttons(at: AppTest, prefix: str):
    return [b for b in at.button if b.key and b.key.startswith(prefix)]


def texts(at: AppTest) -> str:
    return " ".join(str(m.value) for m in at.markdown if "<img" not in str(m.value))


# ------------------------------------------------------------------ sign-in
def test_sign_in_asks_for_name_and_consent(db):
    at = start()
    assert not at.exception
    assert "Rate melodies" in at.title[0].value
    at.text_input[0].input("Ann")
    at.button[0].click().run()
    assert "consent" in at.warning[0].value
    at.text_input[0].input("")
    at.checkbox[0].check()
    at.button[0].click().run()
    assert "rater name" in at.error[0].value
    assert db.raters() == []
    at.text_input[0].input("Ann")
    at.button[0].click().run()
    assert "0** rated this session" in texts(at)
    ann = db.find_rater("Ann")
    assert ann is not None and ann.consented


def test_a_wrong_access_code_keeps_people_out(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_ACCESS_CODE", "folk2024")
    at = start()
    at.text_input[0].input("Ann")
    at.text_input[1].input("guess")
    at.checkbox[0].check()
    at.button[0].click().run()
    assert "Wrong access code" in at.error[0].value
    assert db.raters() == []
    at.text_input[1].input("folk2024")
    at.button[0].click().run()
    assert not at.error and db.find_rater("Ann") is not None


def test_sign_out_returns_to_sign_in(db):
    at = signed_in()
    at.button(key="sign_out").click().run()
    assert at.title and "Rate melodies" in at.title[0].value


# -------------------------------------------------------------------- stars
def test_rating_stars_stores_one_row_and_moves_on(db):
    at = signed_in()
    first = dict(at.session_state["pending"]["single"])
    assert len(at.get("audio")) == 1 and 'alt="score melody"' in " ".join(str(m.value) for m in at.markdown)
    buttons(at, "stars-4-")[0].click().run()
    assert "1** rated this session" in texts(at)
    [rating] = db.ratings()
    assert (rating.stars, rating.melody_id, rating.client_id) == (4, first["melody_ids"][0], first["client_id"])
    assert rating.answer_ms is not None and rating.session_id is not None
    second = at.session_state["pending"]["single"]
    assert second["melody_ids"] != first["melody_ids"]


def test_a_rater_never_gets_a_melody_twice_and_is_told_when_done(db):
    at = signed_in()
    seen = []
    for _ in range(5):
        seen.append(at.session_state["pending"]["single"]["melody_ids"][0])
        buttons(at, "stars-3-")[0].click().run()
    assert sorted(seen) == sorted(db.melody_ids())
    assert "rated every melody" in at.success[0].value
    assert "5** rated this session" in texts(at)


def test_a_double_submit_stores_one_rating(db):
    at = signed_in()
    entry = dict(at.session_state["pending"]["single"])
    buttons(at, "stars-5-")[0].click().run()
    # the second click of a double click arrives for the same item, with the same id
    at.session_state["pending"]["single"] = dict(entry)
    at.run()
    buttons(at, "stars-5-")[0].click().run()
    assert len(db.ratings()) == 1 and not at.error


# -------------------------------------------------------------------- pairs
def test_comparing_a_pair_records_the_choice_and_the_sides(db):
    at = signed_in()
    at.radio(key="mode").set_value("pair").run()
    assert len(at.get("audio")) == 2
    entry = dict(at.session_state["pending"]["pair"])
    at.button(key=f"pair-{entry['shown_left']}-{entry['client_id']}").click().run()  # "A is better"
    [comparison] = db.comparisons()
    assert comparison.shown_left == entry["shown_left"]
    assert tuple(entry["melody_ids"]) == (comparison.melody_a_id, comparison.melody_b_id)
    left_melody = entry["melody_ids"][0] if entry["shown_left"] == "a" else entry["melody_ids"][1]
    assert comparison.winner_id == left_melody  # A = the melody shown on the left
    entry = dict(at.session_state["pending"]["pair"])
    at.button(key=f"pair-tie-{entry['client_id']}").click().run()
    assert [c.choice for c in db.comparisons()] == [comparison.choice, "tie"]
    assert "2** rated this session" in texts(at)


def test_pair_sides_are_randomised(db):
    at = signed_in()
    at.radio(key="mode").set_value("pair").run()
    sides = set()
    for _ in range(8):
        entry = at.session_state["pending"]["pair"]
        sides.add(entry["shown_left"])
        at.button(key=f"pair-skip-{entry['client_id']}").click().run()
    assert sides == {"a", "b"}


# ------------------------------------------------------------ bad requests
def test_a_database_that_is_down_keeps_the_answer_for_sending_again(db, monkeypatch):
    at = signed_in()
    entry = dict(at.session_state["pending"]["single"])
    real = FeedbackStore.submit_rating

    def down(*args, **kwargs):
        raise DatabaseUnavailable("database sqlite:///x is unavailable (database is locked)")

    monkeypatch.setattr(FeedbackStore, "submit_rating", down)
    buttons(at, "stars-2-")[0].click().run()
    assert "Could not save your answer (2 stars)" in at.error[0].value
    assert "Send again" in [b.label for b in at.button]
    assert db.ratings() == []
    at.button(key="resend").click().run()  # still down: still kept
    assert at.error and db.ratings() == []
    monkeypatch.setattr(FeedbackStore, "submit_rating", real)
    at.button(key="resend").click().run()
    assert not at.error
    [rating] = db.ratings()
    assert (rating.stars, rating.client_id) == (2, entry["client_id"])


def test_a_tampered_item_is_refused_and_nothing_is_stored(db):
    at = signed_in()
    entry = at.session_state["pending"]["single"]
    key = f"stars-5-{entry['client_id']}"
    entry["melody_ids"] = [9999]  # the request now names a melody that is not in the pool
    at.button(key=key).click().run()
    assert any("melody id 9999 is unknown" in e.value for e in at.error)
    assert db.ratings() == []


def test_an_unreachable_database_gives_a_clear_message(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    at = start()
    assert not at.exception
    assert "not reachable" in at.error[0].value


def test_a_misconfigured_app_says_which_setting(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_REPEAT_SHARE", "lots")
    at = start()
    assert "RLCOMPOSER_REPEAT_SHARE" in at.error[0].value


# -------------------------------------------------------- history, listen
def test_my_ratings_shows_only_my_own(db):
    bob = db.sign_in("Bob")
    db.submit_rating(new_client_id(), bob.id, db.melody_ids()[0], 1)
    at = signed_in("Ann")
    buttons(at, "stars-5-")[0].click().run()
    at.radio(key="page").set_value("My ratings").run()
    frame = at.dataframe[0].value
    assert list(frame["stars"]) == [5]


def test_listen_page_browses_by_tag_and_offers_downloads(db):
    at = signed_in()
    at.radio(key="page").set_value("Listen").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 5
    at.selectbox(key="listen_tag").set_value("tuned").run()
    assert set(at.dataframe[0].value["tag"]) == {"tuned"}
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["MIDI", "MusicXML", "WAV"]
    assert len(at.get("audio")) == 1


# ---------------------------------------------------------------- dashboard
def test_dashboard_is_closed_without_a_password_setting(db):
    at = signed_in()
    at.radio(key="page").set_value("Dashboard").run()
    assert "RLCOMPOSER_ADMIN_PASSWORD" in at.info[0].value


def test_dashboard_needs_the_admin_password_and_shows_the_figures(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_ADMIN_PASSWORD", "s3cret")
    ann = db.sign_in("Ann")
    prior, tuned = db.melody_ids(["prior"]), db.melody_ids(["tuned"])
    db.submit_comparison(new_client_id(), ann.id, prior[0], tuned[0], "b", "a")
    at = signed_in("Ann")
    at.radio(key="page").set_value("Dashboard").run()
    at.text_input[0].input("wrong")
    at.button[0].click().run()  # the form's submit button
    assert "Wrong admin password" in at.error[0].value
    assert not at.get("download_button")
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert [m.label for m in at.metric][:4] == ["raters", "melodies", "ratings", "comparisons"]
    rates = at.dataframe[-1].value
    assert {(r["tag"], r["win_rate"]) for _, r in rates.iterrows()} == {("prior", 0.0), ("tuned", 1.0)}
    assert [b.label for b in at.get("download_button")] == ["CSV", "JSONL"]
