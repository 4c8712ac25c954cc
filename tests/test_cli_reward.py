"""CLI: ``ratings simulate`` and ``reward train`` (tiny prior, temporary SQLite)."""

from __future__ import annotations

import json

import pytest
from test_listeners import prior_like_melodies

from rlcomposer.cli import main
from rlcomposer.feedback.store import open_store


@pytest.fixture()
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    open_store(url).add_melodies(prior_like_melodies(60, seed=8), "round0", model="test")
    return url


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_then_train_then_active(db, tmp_path, capsys, tiny_prior_dir):
    code, out, err = run(capsys, "ratings", "simulate", "--listener", "lyrical", "--pairs", "60",
                         "--stars", "5", "--tag", "round0", "--db", db, "--seed", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["comparisons"] == 60 and result["stars"] == 5 and result["rater"] == "sim:lyrical"
    rm = tmp_path / "rm"
    code, out, err = run(capsys, "reward", "train", "--db", db, "--out", str(rm), "--set", f"prior={tiny_prior_dir}",
                         "--set", "epochs=5", "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["data"]["raters"] == ["sim:lyrical"] and metrics["held_out"]["pairs"] == 12
    assert "held-out: accuracy" in err
    code, out, err = run(capsys, "ratings", "simulate", "--listener", "rlcomposer.preferences.listeners:lyrical",
                         "--pairs", "5", "--strategy", "active", "--reward", str(rm), "--db", db, "--quiet")
    assert code == 0, err
    assert "sim:lyrical: 5 comparisons" in out
    assert len(open_store(db).comparisons()) == 65


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
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_listener_that_raises_names_the_melody(db, tmp_path, capsys, monkeypatch):
    (tmp_path / "bad_listener.py").write_text(
        "def grumpy(melody):\n    raise RuntimeError('cannot hear')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run(capsys, "ratings", "simulate", "--listener", "bad_listener:grumpy", "--pairs", "2",
                         "--db", db)
    assert code == 2
    assert "sim:grumpy raised RuntimeError: cannot hear on melody id" in err
