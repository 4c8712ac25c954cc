"""CLI: ``ratings simulate`` and ``reward train`` (tiny prior, temporary SQLite)."""

from __future__ import annotations

import json

import pytest
from test_listeners import prior_like_melodies

from rlcomposer.cli import main
from rlcomposer.feedback.store import open_store


def make_db(path) -> str:
    url = f"sqlite:///{path}"
    open_store(url).add_melodies(prior_like_melodies(60, seed=8), "round0", model="test")
    return url


@pytest.fixture()
def db(tmp_path):
    return make_db(tmp_path / "r.sqlite3")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def answers(url):
    return [(c.melody_a_id, c.melody_b_id, c.shown_left, c.choice) for c in open_store(url).comparisons()]


def test_simulate_then_train_then_active(db, tmp_path, capsys, tiny_prior_dir):
    code, out, err = run(capsys, "ratings", "simulate", "--listener", "lyrical", "--pairs", "60",
                         "--stars", "5", "--tag", "round0", "--db", db, "--seed", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {k: result[k] for k in ("comparisons", "stars", "rater", "listener", "strategy", "seed", "db")} == {
        "comparisons": 60, "stars": 5, "rater": "sim:lyrical", "listener": "lyrical", "strategy": "random",
        "seed": 3, "db": db}
    assert result["a"] + result["b"] + result["tie"] == 60
    assert result["noise"] == {"temperature": 0.5, "mistake_rate": 0.1, "tie_band": 0.05, "star_noise": 0.5}
    assert len(answers(db)) == 60 and len(open_store(db).export_rows()) == 65
    rm = tmp_path / "rm"
    code, out, err = run(capsys, "reward", "train", "--db", db, "--out", str(rm), "--set", f"prior={tiny_prior_dir}",
                         "--set", "epochs=5", "--json")
    assert code == 0, err
    metrics = json.loads(out)
    data = metrics["data"]
    assert metrics["out"] == str(rm)
    assert (data["comparisons"], data["stars"], data["raters"], data["tag"], data["rater_filter"]) == (
        60, 5, ["sim:lyrical"], None, None)
    assert metrics["held_out"]["pairs"] == data["held_out_comparisons"] > 0
    assert "held-out: accuracy" in err  # training notes on stderr, stdout is the JSON
    assert {"config.json", "model.pt", "metrics.json"} <= {p.name for p in rm.iterdir()}
    saved = json.loads((rm / "metrics.json").read_text())
    assert saved["data"] == data and saved["held_out"]["pairs"] == metrics["held_out"]["pairs"]
    code, out, err = run(capsys, "ratings", "simulate", "--listener", "rlcomposer.preferences.listeners:lyrical",
                         "--pairs", "5", "--strategy", "active", "--reward", str(rm), "--db", db, "--quiet")
    assert code == 0, err
    assert out.startswith("sim:lyrical: 5 comparisons (a ") and err == ""
    assert len(answers(db)) == 65


def test_simulate_same_seed_same_answers(tmp_path, capsys):
    urls = [make_db(tmp_path / f"{name}.sqlite3") for name in ("a", "b", "c")]
    for url, seed in zip(urls, ("7", "7", "8"), strict=True):
        code, _, err = run(capsys, "ratings", "simulate", "--listener", "rhythmic", "--pairs", "20",
                           "--db", url, "--seed", seed, "--quiet")
        assert code == 0, err
    first, again, other = (answers(url) for url in urls)
    assert len(first) == 20 and first == again
    assert other != first


@pytest.mark.parametrize("argv, message", [
    (["ratings", "simulate", "--listener", "nosuch.module:fn", "--pairs", "3"], "cannot import module"),
    (["ratings", "simulate", "--listener", "lyrical"], "nothing to do"),
    (["ratings", "simulate", "--listener", "lyrical", "--pairs", "3", "--strategy", "active"], "needs --reward"),
    (["ratings", "simulate", "--listener", "lyrical", "--pairs", "3", "--mistake-rate", "2"], "mistake rate"),
    (["ratings", "simulate", "--listener", "lyrical", "--pairs", "3", "--tag", "nope"], "is empty"),
    (["reward", "train", "--out", "RM"], "too few ratings"),
    (["reward", "train", "--out", "RM", "--set", "bogus=1"], "unknown key 'bogus'"),
])
def test_bad_input_is_one_line(db, tmp_path, capsys, monkeypatch, tiny_prior_dir, argv, message):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "reward" and "bogus=1" not in argv:
        argv = argv + ["--set", f"prior={tiny_prior_dir}"]
    code, out, err = run(capsys, *argv, "--db", db)
    assert code == 2 and out == ""
    assert err.startswith("rlcomposer: error:") and message in err and len(err.strip().splitlines()) == 1
    assert open_store(db).comparisons() == [] and not (tmp_path / "RM").exists()


def test_listener_that_raises_names_the_melody(db, tmp_path, capsys, monkeypatch):
    (tmp_path / "bad_listener.py").write_text(
        "def grumpy(melody):\n    raise RuntimeError('cannot hear')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run(capsys, "ratings", "simulate", "--listener", "bad_listener:grumpy", "--pairs", "2",
                         "--db", db)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "sim:grumpy raised RuntimeError: cannot hear on melody id" in err
    assert open_store(db).comparisons() == []
