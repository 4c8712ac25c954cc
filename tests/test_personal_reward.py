"""Personal reward models (``reward train --per-rater``), melodies made for a rater
(``generate --rater``) and forgetting a rater (``ratings forget``): tiny prior, temporary SQLite."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_listeners import prior_like_melodies

from rlcomposer.cli import main
from rlcomposer.feedback import database
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.feedback.testing import (
    clear_tables,
    throwaway_postgres,
)
from rlcomposer.preferences.listeners import lyrical
from rlcomposer.preferences.personal_reward import (
    fit_rater_weights,
    load_personal_reward_model,
)
from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig
from rlcomposer.preferences.reward_model import RewardModelError

EPOCHS = ["--set", "epochs=20", "--set", "ensemble_size=3", "--set", "reference_melodies=64"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def opposite(melody) -> float:
    """The lyrical listener's taste turned round."""
    return -lyrical(melody)


def answer_pairs(store, rater: str, score, pairs: int, seed: int) -> None:
    """``rater`` answers ``pairs`` random pairs of the pool by ``score`` (noiseless)."""
    rng = np.random.default_rng(seed)
    ids = store.melody_ids()
    records = store.get_melodies(ids)
    who = store.sign_in(rater, kind="simulated")
    for _ in range(pairs):
        a, b = (int(i) for i in rng.choice(ids, 2, replace=False))
        choice = "a" if score(records[a].melody) > score(records[b].melody) else "b"
        store.submit_comparison(new_client_id(), who.id, a, b, choice, "a")


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_prior_dir):
    """A database where sim:lyrical and sim:opposite (opposite tastes) answered 80 pairs each and
    sim:silent signed in without answering, and the personal model trained on it."""
    folder = tmp_path_factory.mktemp("personal")
    url = f"sqlite:///{folder / 'study.sqlite3'}"
    store = open_store(url)
    store.add_melodies(prior_like_melodies(60, seed=3), "pool", model="test")
    answer_pairs(store, "sim:lyrical", lyrical, 80, seed=1)
    answer_pairs(store, "sim:opposite", opposite, 80, seed=2)
    store.sign_in("sim:silent", kind="simulated")
    rm = folder / "personal"
    code = main(["reward", "train", "--per-rater", "--db", url, "--out", str(rm), "--quiet", "--json",
                 "--set", f"prior={tiny_prior_dir}", *EPOCHS, "--set-personal", "penalty=1"])
    assert code == 0
    return url, rm


def test_per_rater_model_scores_each_rater_by_their_taste(study, capsys):
    url, rm = study
    model = load_personal_reward_model(rm)
    assert set(model.raters) == {"sim:lyrical", "sim:opposite", "sim:silent"}
    melodies = prior_like_melodies(200, seed=11)
    truth = np.array([lyrical(m) for m in melodies])
    mine = model.score_batch(melodies, "sim:lyrical")
    theirs = model.score_batch(melodies, "sim:opposite")
    # each rater's reward follows their own taste, whatever the pooled model learnt from both
    assert np.corrcoef(mine, truth)[0, 1] > 0.2
    assert np.corrcoef(theirs, truth)[0, 1] < -0.2
    # a rater it knows without answers is scored by the population model, and told so
    silent, note = model.for_rater("sim:silent")
    assert np.allclose(silent.score_batch(melodies[:20]), model.score_batch(melodies[:20]))
    assert "no answers" in note and "population" in note
    with pytest.raises(RewardModelError, match="has no rater 'sim:nobody': it knows sim:lyrical"):
        model.score_batch(melodies[:2], "sim:nobody")


def test_per_rater_report_in_metrics(study):
    _, rm = study
    metrics = json.loads((rm / "metrics.json").read_text())
    rows = {r["rater"]: r for r in metrics["per_rater"]}
    assert rows["sim:lyrical"]["comparisons"] == 80 and rows["sim:silent"]["comparisons"] == 0
    for name in ("sim:lyrical", "sim:opposite"):
        assert all(0 <= rows[name][k] <= 1 for k in ("population", "alone", "personal"))
    # the pooled model cannot please two opposite tastes; each one's personal model can
    assert rows["sim:opposite"]["personal"] > rows["sim:opposite"]["population"] + 0.1
    assert rows["sim:silent"]["personal"] is None
    assert (rm / "population" / "model.pt").is_file()


def test_generate_for_a_rater(study, tmp_path, capsys):
    _, rm = study
    code, out, err = run(capsys, "generate", "--model", "prior", "--best-of", "4", "--reward", rm,
                         "--rater", "sim:lyrical", "--n", "2", "--format", "json", "--out", tmp_path / "mine",
                         "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)
    assert result["rater"] == "sim:lyrical" and len(result["files"]) == 2
    assert all(os.path.isfile(f) for f in result["files"])
    code, out, err = run(capsys, "generate", "--model", "prior", "--best-of", "2", "--reward", rm,
                         "--rater", "sim:silent", "--n", "1", "--format", "json", "--out", tmp_path / "silent")
    assert code == 0, err
    assert "had no answers" in out and "population model" in out


@pytest.mark.parametrize("argv, message", [
    (["--rater", "sim:nobody"], "has no rater 'sim:nobody'"),
    (["--rater", "sim:lyrical", "--reward", "rlcomposer.preferences.listeners:lyrical"],
     "--rater needs a personal reward model"),
])
def test_generate_rater_errors(study, tmp_path, capsys, argv, message):
    _, rm = study
    base = ["generate", "--model", "prior", "--best-of", "2", "--n", "1", "--format", "json",
            "--out", tmp_path / "x"]
    if "--reward" not in argv:
        base += ["--reward", rm]
    code, _, err = run(capsys, *base, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_per_rater_refuses_one_rater(tmp_path, tiny_prior_dir, capsys):
    url = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    store = open_store(url)
    store.add_melodies(prior_like_melodies(30, seed=4), "pool", model="test")
    answer_pairs(store, "sim:lyrical", lyrical, 30, seed=1)
    code, _, err = run(capsys, "reward", "train", "--per-rater", "--db", url, "--out", tmp_path / "rm",
                       "--set", f"prior={tiny_prior_dir}", *EPOCHS)
    assert code == 2 and "at least two raters" in err and "(sim:lyrical)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "rm").exists()


def test_fit_rater_weights_no_answers_and_shrinkage():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x @ np.array([2.0, -1.0, 0.0]) > 0).astype(float)
    assert np.all(fit_rater_weights(np.zeros(0), np.zeros((0, 3)), np.zeros(0), 1.0) == 0)
    loose = fit_rater_weights(np.zeros(200), x, y, 0.1)
    tight = fit_rater_weights(np.zeros(200), x, y, 1000.0)
    assert loose[0] > 1 and loose[1] < -0.5  # the answers' direction
    assert np.linalg.norm(tight) < 0.2 * np.linalg.norm(loose)  # the penalty holds it at the population
    with pytest.raises(RewardModelError, match="folds"):
        PersonalRewardConfig(folds=1)


# ------------------------------------------------------------------ forget

@pytest.fixture(params=["sqlite", "postgresql"])
def forget_db(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'forget.sqlite3'}"
        return
    postgres_server = request.getfixturevalue("postgres_server")
    with throwaway_postgres(postgres_server) as url:
        database.upgrade_database(url)
        clear_tables(url)
        yield url


def test_forget_removes_exactly_that_rater(forget_db, capsys):
    store = open_store(forget_db)
    store.add_melodies(prior_like_melodies(20, seed=5), "pool", model="test")
    answer_pairs(store, "sim:lyrical", lyrical, 7, seed=1)
    answer_pairs(store, "sim:opposite", opposite, 5, seed=2)
    kim, _token = store.register_rater("Keyboard Kim")
    ids = store.melody_ids()
    store.submit_rating(new_client_id(), kim.id, ids[0], 4)
    store.submit_comparison(new_client_id(), kim.id, ids[0], ids[1], "a", "b")
    store.start_session(kim.id)
    code, out, err = run(capsys, "ratings", "forget", "keyboard kim", "--db", forget_db)
    assert code == 0, err
    assert "forgot rater 'Keyboard Kim'" in out and "1 comparisons, 1 star ratings, 1 rating sessions" in out
    assert "personal link" in out
    left = {r.name for r in store.raters()}
    assert left == {"sim:lyrical", "sim:opposite"}
    assert len(store.comparisons()) == 12 and store.ratings() == []
    code, out, err = run(capsys, "ratings", "forget", "sim:lyrical", "--db", forget_db, "--json")
    assert code == 0, err
    assert json.loads(out)["comparisons"] == 7 and len(store.comparisons()) == 5
    code, _, err = run(capsys, "ratings", "forget", "sim:nobody", "--db", forget_db)
    assert code == 2 and "no rater called 'sim:nobody'" in err and "nothing removed" in err
    assert len(store.comparisons()) == 5 and len(store.raters()) == 1


def test_forget_removes_the_melodies_made_for_that_rater(forget_db, capsys):
    """Their ``personal:<study>:<id>`` melodies go (in every study), with their A/B answers; another
    rater's, the population's and the pool stay; the count is printed."""
    from rlcomposer.feedback.personalise import personal_tag, population_tag

    store = open_store(forget_db)
    store.add_melodies(prior_like_melodies(6, seed=5), "pool", model="test")
    kim, _ = store.register_rater("Keyboard Kim")
    ann, _ = store.register_rater("Ann")
    for study, seed in (("s1", 1), ("s1:x", 2)):  # a study name with a colon: the rater id is last
        store.add_melodies(prior_like_melodies(2, seed=seed), personal_tag(study, kim.id), model=f"made {study}")
        store.add_melodies(prior_like_melodies(2, seed=seed + 10), personal_tag(study, ann.id), model="made ann")
    store.add_melodies(prior_like_melodies(2, seed=30), population_tag("s1"), model="made population")
    mine, theirs = store.melody_ids([personal_tag("s1", kim.id)]), store.melody_ids([population_tag("s1")])
    store.submit_comparison(new_client_id(), kim.id, mine[0], theirs[0], "a", "a")
    store.mark_heard(kim.id, [mine[1]])
    before = len(store.melody_tags())
    code, out, err = run(capsys, "ratings", "forget", "keyboard kim", "--db", forget_db, "--json")
    assert code == 0, err
    assert json.loads(out)["personal_melodies"] == 4 and json.loads(out)["comparisons"] == 1
    tags = dict(store.tags())
    assert personal_tag("s1", kim.id) not in tags and personal_tag("s1:x", kim.id) not in tags
    assert tags[personal_tag("s1", ann.id)] == 2 and tags[personal_tag("s1:x", ann.id)] == 2
    assert tags[population_tag("s1")] == 2 and tags["pool"] == 6 and len(store.melody_tags()) == before - 4
    assert {m["name"] for m in store.models()} == {"test", "made ann", "made population"}
    code, out, err = run(capsys, "ratings", "forget", "ann", "--db", forget_db)
    assert code == 0, err
    assert "4 made-for-you melodies" in out


def test_forget_with_reward_removes_the_weights(study, tmp_path, capsys):
    import shutil
    import sqlite3

    url, rm = study
    db = tmp_path / "copy.sqlite3"
    with sqlite3.connect(database.sqlite_path(url)) as source, sqlite3.connect(db) as target:
        source.backup(target)  # the committed rows, write-ahead log included
    copy = tmp_path / "rm"
    shutil.copytree(rm, copy)
    code, _, err = run(capsys, "ratings", "forget", "sim:lyrical", "--db", f"sqlite:///{db}",
                       "--reward", tmp_path / "nowhere")
    assert code == 2 and len(open_store(f"sqlite:///{db}").comparisons()) == 160  # nothing removed
    code, out, err = run(capsys, "ratings", "forget", "sim:lyrical", "--db", f"sqlite:///{db}", "--reward", copy)
    assert code == 0, err
    assert "80 comparisons" in out and "removed 'sim:lyrical''s personal weights" in out
    model = load_personal_reward_model(copy)
    assert set(model.raters) == {"sim:opposite", "sim:silent"}
    with pytest.raises(RewardModelError, match="has no rater 'sim:lyrical'"):
        model.for_rater("sim:lyrical")


def test_trunk_model_saves_and_loads_scoring_the_same(tmp_path, tiny_prior_dir):
    from rlcomposer.preferences.labels import PairLabel
    from rlcomposer.preferences.personal_reward import (
        save_personal_reward_model,
        train_personal_reward_model,
    )
    from rlcomposer.preferences.reward_model import RewardModelConfig

    melodies = prior_like_melodies(40, seed=6)
    rng = np.random.default_rng(0)
    labels = []
    for rater, taste in (("sim:lyrical", lyrical), ("sim:opposite", opposite)):
        for _ in range(30):
            a, b = rng.choice(40, 2, replace=False)
            labels.append(PairLabel(melodies[a], melodies[b], "a" if taste(melodies[a]) > taste(melodies[b]) else "b",
                                    rater))
    config = RewardModelConfig(prior=str(tiny_prior_dir), epochs=10, ensemble_size=3, reference_melodies=64)
    model = train_personal_reward_model(labels, [], config, PersonalRewardConfig(trunk_hidden=3, trunk_steps=20,
                                                                                 folds=0), log=None)
    assert model.weights.shape == (2, model.base_size) and model.trunk[0].shape[1] == 3
    save_personal_reward_model(model, tmp_path / "rm")
    loaded = load_personal_reward_model(tmp_path / "rm")
    fresh = prior_like_melodies(10, seed=9)
    assert np.allclose(loaded.score_batch(fresh, "sim:opposite"), model.score_batch(fresh, "sim:opposite"), atol=1e-4)
    # pessimism: less the posterior spread of the rater's own part (kept on disk too)
    doubtful = model.score_batch(fresh, "sim:opposite", pessimism=1.0)
    assert np.all(doubtful < model.score_batch(fresh, "sim:opposite", pessimism=0.0))
    assert np.allclose(loaded.score_batch(fresh, "sim:opposite", pessimism=1.0), doubtful, atol=1e-3)
    assert "per_rater" not in loaded.metrics  # folds 0: no held-out report
