"""The app's "Made for you" page with Streamlit's AppTest: after the study, a blind A/B of the
melodies made for the rater against the population's, each answer stored as a comparison of
the study and counted in the organiser's per-rater result, never as an answer of the study;
"not ready yet" before any were made."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_app import buttons, db, hear, signed_in, start, texts, token_of  # noqa: F401 - db is a fixture

from rlcomposer.feedback.personalise import (
    made_for_you_results,
    personal_tag,
    population_tag,
)
from rlcomposer.feedback.study import StudySpec, create_study, get_study, study_progress
from rlcomposer.music.melody import random_melody


@pytest.fixture
def short(db):  # noqa: F811 - the fixture above
    create_study(db, StudySpec(name="short", pool_tags=("prior", "tuned"), mode="pairs", items_per_rater=2,
                               repeat_share=0.0, listen_fraction=0.5))
    return db


def finish(at):
    for _ in range(2):
        at = hear(at)
        buttons(at, "answer-left-")[0].click().run()
    assert "Thank you!" in [h.value for h in at.header]
    return at


def open_made_for_you(at):
    [entry] = [b for b in at.button if b.key == "open-made-for-you"]
    return entry.click().run()


def test_made_for_you_says_not_ready_before_the_melodies_are_made(short):
    at = open_made_for_you(finish(signed_in("Nia", study="short")))
    assert not at.exception
    assert any("not ready yet" in i.value for i in at.info), [i.value for i in at.info]


def test_a_blind_ab_answer_is_stored_in_the_study_and_counted_for_the_rater(short):
    at = finish(signed_in("Ola", study="short"))
    rater = short.find_rater("Ola")
    rng = np.random.default_rng(5)
    short.add_melodies([random_melody(rng, 32) for _ in range(2)], personal_tag("short", rater.id))
    short.add_melodies([random_melody(rng, 32) for _ in range(2)], population_tag("short"))
    started = time.perf_counter()
    at = open_made_for_you(at)
    assert time.perf_counter() - started < 2.0  # melodies made beforehand: no model work in the click
    assert not at.exception
    entry = dict(at.session_state["made_for_you"])
    assert "made for you" in texts(at) and "made for everyone" in texts(at)
    assert "personal" not in texts(at) and "population" not in texts(at)  # blind: no tag on screen
    at = hear_pair(at, entry)
    buttons(at, "answer-left-")[0].click().run()
    assert not at.exception
    study = get_study(short, "short")
    stored = [c for c in short.comparisons() if c.rater_id == rater.id]
    assert len(stored) == 3 and all(c.study_id == study.id for c in stored)
    assert (stored[-1].melody_a_id, stored[-1].melody_b_id) == tuple(entry["melody_ids"])
    rows, total = made_for_you_results(short, study)
    [row] = rows
    left_is_personal = entry["shown_left"] == "a"  # melody a is the personal one
    assert (row.rater, row.answers, row.personal_wins) == ("Ola", 1, 1.0 if left_is_personal else 0.0)
    assert total.answers == 1
    # the next pair is on screen; after it, none is left
    at = hear_pair(at, dict(at.session_state["made_for_you"]))
    buttons(at, "answer-tie-")[0].click().run()
    assert any("compared all your melodies (2 pairs)" in s.value for s in at.success)
    # the A/B answers are not answers of the study: still 2 answered, on the page and on a return
    at.segmented_control(key="page").set_value("Rate").run()
    assert any("completed the study: 2 answers" in s.value for s in at.success), [s.value for s in at.success]
    back = start("short", token=token_of(at))
    assert any("Welcome back, Ola: 2 answered" in t.proto.body.replace("\\", "") for t in back.get("toast"))
    assert study_progress(short, study).answers == 2


def hear_pair(at, entry):
    for label in ("A", "B"):
        at.session_state[f"player-{label}"] = {"item": entry["client_id"], "played_ms": 60_000, "heard": True}
    return at.run()
