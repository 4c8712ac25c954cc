"""The rating app draws every melody in its own metre, key signature and pick-up (issue 19):
on the rating page, in the organiser's pool (table and preview), with Streamlit's AppTest.
A stored melody whose metre or key cannot be read gives one line naming it, not a crash.
tests/test_browser_metre.py looks at the same in chromium."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest
from test_app_presentation import g_major_tune

from rlcomposer.feedback import database
from rlcomposer.feedback.presentation import EngravedScore, read_engraving
from rlcomposer.feedback.schema import StoredMelody
from rlcomposer.feedback.store import open_store
from rlcomposer.feedback.study import StudySpec, create_study

APP = str(Path(__file__).resolve().parent.parent / "feedback_app" / "app.py")
SETTINGS = ("RLCOMPOSER_ACCESS_CODE", "RLCOMPOSER_ADMIN_PASSWORD", "RLCOMPOSER_POOL_TAGS",
            "RLCOMPOSER_REPEAT_SHARE", "RLCOMPOSER_TEMPO_BPM", "RLCOMPOSER_MIX_TAGS",
            "RLCOMPOSER_ACTIVE_REWARD", "RLCOMPOSER_STUDY_MODE", "RLCOMPOSER_ITEMS_PER_RATER",
            "RLCOMPOSER_LISTEN_FRACTION")
PASSWORD = "s3cret"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A pool of 8-bar tunes in G major: 6/8 (two with a pick-up), 3/4 and 4/4, 3 of each."""
    url = f"sqlite:///{tmp_path / 'metre.sqlite3'}"
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", url)
    monkeypatch.setenv("RLCOMPOSER_ADMIN_PASSWORD", PASSWORD)
    store = open_store(url)
    store.add_melodies([g_major_tune("6/8", 8, pickup_steps=2 if i else 0, seed=i) for i in range(3)], "jigs")
    store.add_melodies([g_major_tune("3/4", 8, seed=10 + i) for i in range(3)], "waltzes")
    store.add_melodies([g_major_tune("4/4", 8, seed=20 + i) for i in range(3)], "reels")
    yield store
    database.dispose_engine(url)


def signed_in(study: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["study"] = study
    at.run()
    at.text_input[0].input("Ann")
    at.checkbox[0].check()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def scores(at: AppTest) -> dict[str, EngravedScore]:
    """Each score image on the page, read back: by its alt text (``score melody``, ``score A``...)."""
    found = {}
    for element in at.markdown:
        match = re.search(r'<img alt="(score[^"]*)" src="data:image/svg\+xml;base64,([^"]+)"', str(element.value))
        if match:
            found[match.group(1)] = read_engraving(base64.b64decode(match.group(2)).decode("utf-8"))
    return found


def layout(store, melody_id: int) -> tuple[str, int, int]:
    melody = store.get_melody(melody_id).melody
    return melody.metre.name, melody.key.sharps, melody.pickup_steps


def test_the_rating_page_draws_a_jig_in_6_8_with_one_sharp_and_its_pick_up(store):
    create_study(store, StudySpec(name="jigs", pool_tags=("jigs",), mode="stars", items_per_rater=3,
                                  repeat_share=0.0, listen_fraction=0.0))
    at = signed_in("jigs")
    seen = set()
    for stars in (4, 2, 5):
        [melody_id] = at.session_state["pending"]["melody_ids"]
        score = scores(at)["score melody"]
        metre, sharps, pickup = layout(store, melody_id)
        assert (score.time_signatures, score.key_sharps, score.lines) == ((metre,), sharps, 1) == (("6/8",), 1, 1)
        assert (score.bars, score.rests, score.accidentals) == (8 + (pickup > 0), 0, 0)  # a pick-up: a short bar
        seen.add(pickup)
        next(b for b in at.button if b.key and b.key.startswith(f"answer-stars-{stars}-")).click().run()
        assert not at.exception and not at.error
    assert seen == {0, 2}


def test_a_pair_of_a_mixed_pool_is_drawn_in_its_own_metre(store):
    create_study(store, StudySpec(name="mixed", pool_tags=("jigs", "waltzes", "reels"), mode="pairs",
                                  items_per_rater=6, repeat_share=0.0, listen_fraction=0.0))
    at = signed_in("mixed")
    metres = set()
    for _ in range(6):
        entry = at.session_state["pending"]
        drawn = scores(at)
        shown = {drawn["score A"].time_signatures, drawn["score B"].time_signatures}
        stored = {(layout(store, i)[0],) for i in entry["melody_ids"]}
        assert shown == stored and len(shown) == 1  # a pair is of one metre, drawn as stored
        assert all(s.key_sharps == 1 and s.lines == 1 for s in drawn.values())
        metres |= stored
        next(b for b in at.button if b.key and b.key.startswith("answer-tie-")).click().run()
        assert not at.exception and not at.error
    assert len(metres) >= 2


def open_pool(at: AppTest | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["area"] = "organiser"
    at.run()
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_the_organisers_pool_shows_metre_key_and_pick_up_and_draws_the_preview_so(store):
    at = open_pool()
    table = next(d for d in at.dataframe if "pick-up (16ths)" in d.value.columns).value
    rows = {int(r["melody"]): (r["metre"], r["key"], r["pick-up (16ths)"]) for _, r in table.iterrows()}
    assert sorted(rows.values()) == sorted(
        [("6/8", "G major", "0")] + [("6/8", "G major", "2")] * 2 + [("3/4", "G major", "0")] * 3
        + [("4/4", "G major", "0")] * 3)
    jig = next(i for i, (metre, _, pickup) in rows.items() if metre == "6/8" and pickup == "2")
    at.selectbox(key="listen_melody").select(jig).run()
    assert not at.exception and not at.error
    score = scores(at)[f"score {jig}"]
    assert (score.time_signatures, score.key_sharps, score.bars, score.rests) == (("6/8",), 1, 9, 0)
    assert [b.label for b in at.get("download_button")][-4:] == ["MIDI", "MusicXML", "ABC", "WAV"]


def test_a_melody_with_a_malformed_stored_metre_is_one_line_naming_it_not_a_crash(store):
    [bad] = store.add_melodies([g_major_tune("6/8", 2, seed=99)], "broken").ids
    with store._session(write=True) as session:
        session.execute(sa.update(StoredMelody).where(StoredMelody.id == bad)
                        .values(extra={"metre": "7/5", "key": {"tonic": "G", "mode": "major"}}))
    create_study(store, StudySpec(name="broken", pool_tags=("broken",), mode="stars", items_per_rater=1,
                                  repeat_share=0.0, listen_fraction=0.0))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["study"] = "broken"
    at.run()
    at.text_input[0].input("Ann")
    at.checkbox[0].check()
    at.button[0].click().run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert f"melody id {bad} (tag broken): its stored metre '7/5' cannot be read" in error
    assert len(error.splitlines()) == 1

    at = open_pool()
    at.selectbox(key="listen_melody").select(bad).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert f"melody id {bad}" in error and "'7/5'" in error and len(error.splitlines()) == 1
    table = next(d for d in at.dataframe if "pick-up (16ths)" in d.value.columns).value
    assert table[table["melody"] == bad]["metre"].tolist() == ["7/5"]  # shown as stored
