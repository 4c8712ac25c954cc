"""The app and experiments: the dashboard's "Experiments" section, pairs across two tags,
active selection with a reward model (Streamlit's AppTest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_experiment_stats import tiny_reward_model

from rlcomposer.feedback import database
from rlcomposer.feedback.experiment_stats import (
    reward_model_accuracy_on_people,
)
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.music.melody import random_melody
from rlcomposer.preferences.reward_model_cache import clear_reward_model_cache

APP = str(Path(__file__).resolve().parent.parent / "feedback_app" / "app.py")
SETTINGS = ("RLCOMPOSER_ACCESS_CODE", "RLCOMPOSER_ADMIN_PASSWORD", "RLCOMPOSER_POOL_TAGS",
            "RLCOMPOSER_REPEAT_SHARE", "RLCOMPOSER_TEMPO_BPM", "RLCOMPOSER_MIX_TAGS",
            "RLCOMPOSER_ACTIVE_REWARD", "RLCOMPOSER_STUDY_MODE", "RLCOMPOSER_ITEMS_PER_RATER")


@pytest.fixture(scope="module")
def reward_dir(tiny_prior_dir, tmp_path_factory):
    return tiny_reward_model(tiny_prior_dir, tmp_path_factory.mktemp("rm") / "reward_model")


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", url)
    monkeypatch.setenv("RLCOMPOSER_REPEAT_SHARE", "0")
    monkeypatch.setenv("RLCOMPOSER_LISTEN_FRACTION", "0")
    store = open_store(url)
    rng = np.random.default_rng(0)
    store.add_melodies([random_melody(rng, 16) for _ in range(3)], "exp/round-0", model="prior", experiment="exp")
    store.add_melodies([random_melody(rng, 16) for _ in range(2)], "exp/round-1", model="exp/round-0/policy",
                       model_kind="policy", experiment="exp")
    clear_reward_model_cache()
    yield store
    database.dispose_engine(url)


def signed_in(name: str = "Ann") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input[0].input(name)
    at.checkbox[0].check()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def open_dashboard(monkeypatch) -> AppTest:
    monkeypatch.setenv("RLCOMPOSER_ADMIN_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["area"] = "organiser"
    at.run()
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def all_text(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("markdown", "caption", "subheader", "warning", "info")
             for e in at.get(kind)]
    return " ".join(parts)


def test_dashboard_experiments_say_no_data_yet(db, monkeypatch):
    at = open_dashboard(monkeypatch)
    assert "Experiments" in [s.value for s in at.subheader]
    text = all_text(at)
    assert "#### exp" in text
    assert "Reward model: none registered yet (no data yet)" in text
    assert "no people's comparisons yet (no data yet)" in text
    assert "rlcomposer study create exp-verdict --mode mixed-tags --tags exp/round-1,exp/round-0" in text


def test_dashboard_shows_reward_model_accuracy_and_people_win_rate(db, monkeypatch, reward_dir, tmp_path):
    db.register_model("exp/round-0/reward-model", kind="reward-model", config={"experiment": "exp", "round": 0},
                      path=str(reward_dir))
    db.register_model("exp/round-1/reward-model", kind="reward-model", config={"experiment": "exp", "round": 1},
                      path=str(tmp_path / "deleted"))
    prior, tuned = db.melody_ids(["exp/round-0"]), db.melody_ids(["exp/round-1"])
    ann, bob = db.sign_in("Ann").id, db.sign_in("Bob").id
    sim = db.sign_in("sim:x", kind="simulated").id
    for rater, a, b, choice in [(ann, tuned[0], prior[0], "a"), (ann, prior[1], tuned[1], "b"),
                                (bob, tuned[1], prior[2], "a"), (bob, prior[0], tuned[0], "a"),
                                (bob, tuned[0], prior[1], "skip"), (sim, tuned[0], prior[2], "b")]:
        db.submit_comparison(new_client_id(), rater, a, b, choice, "a")
    expected = reward_model_accuracy_on_people(db, reward_dir, experiment="exp")
    at = open_dashboard(monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    label = "Reward model (round 0): accuracy on people"
    assert metrics[label] == f"{100 * expected['accuracy']:.0f}%"
    assert metrics["People's comparisons"] == "4 decided, 0 ties"
    assert metrics["Log-loss"] == f"{expected['log_loss']:.3f}"
    assert "exp/round-1/reward-model" in all_text(at)  # the skipped newer one, with the reason
    table = at.dataframe[-1].value
    (row,) = list(table.itertuples(index=False))
    row = dict(zip(table.columns, row, strict=True))
    assert row["round pool"] == "exp/round-1" and row["tuned policy"] == "exp/round-0/policy"
    assert (row["people's win-rate"], row["comparisons"], row["wins"], row["losses"], row["skips"],
            row["people"]) == ("75%", 4, 3, 1, 1, 2)


def test_mixed_tags_give_pairs_across_the_two_pools(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_POOL_TAGS", "exp/round-1,exp/round-0")
    monkeypatch.setenv("RLCOMPOSER_MIX_TAGS", "1")
    prior, tuned = set(db.melody_ids(["exp/round-0"])), set(db.melody_ids(["exp/round-1"]))
    at = signed_in()
    for _ in range(3):
        a, b = at.session_state["pending"]["melody_ids"]
        assert {a in tuned, b in tuned} == {True, False} and {a in prior, b in prior} == {True, False}
        next(btn for btn in at.button if btn.key and btn.key.startswith("answer-tie")).click().run()
    assert len(db.comparisons()) == 3


def test_mixed_tags_need_two_tags(db, monkeypatch):
    monkeypatch.setenv("RLCOMPOSER_POOL_TAGS", "exp/round-1")
    monkeypatch.setenv("RLCOMPOSER_MIX_TAGS", "1")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "RLCOMPOSER_MIX_TAGS" in at.error[0].value


def test_active_reward_setting_uses_active_selection(db, monkeypatch, reward_dir):
    from rlcomposer.feedback.selection import ActiveSelection

    monkeypatch.setenv("RLCOMPOSER_ACTIVE_REWARD", str(reward_dir))
    at = signed_in()
    assert not at.exception and not at.error
    assert isinstance(at.session_state["strategy"], ActiveSelection)


def test_a_broken_active_reward_falls_back_to_random_and_the_dashboard_says_so(db, monkeypatch, tmp_path):
    monkeypatch.setenv("RLCOMPOSER_ACTIVE_REWARD", str(tmp_path / "nowhere"))
    AppTest.from_file(APP, default_timeout=60).run()  # a rater opens the plain address: the default study
    at = open_dashboard(monkeypatch)
    assert "Active selection is OFF" in all_text(at)


def test_active_reward_latest_uses_the_experiments_registered_reward_model(db, monkeypatch, reward_dir):
    from rlcomposer.feedback.selection import ActiveSelection, RandomSelection

    monkeypatch.setenv("RLCOMPOSER_ACTIVE_REWARD", "latest")
    monkeypatch.setenv("RLCOMPOSER_POOL_TAGS", "exp/round-1")
    at = signed_in()
    assert type(at.session_state["strategy"]) is RandomSelection  # nothing registered yet: random
    db.register_model("exp/round-0/reward-model", kind="reward-model",
                      config={"experiment": "exp", "round": 0}, path=str(reward_dir))
    at = signed_in("Bob")
    assert not at.exception and not at.error
    assert isinstance(at.session_state["strategy"], ActiveSelection)
