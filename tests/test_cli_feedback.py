"""`rlcomposer db`, `pool add`, `ratings export` and `app`, as a user runs them."""

from __future__ import annotations

import csv
import json

import pytest

from rlcomposer.cli import app as cli_app
from rlcomposer.cli import main
from rlcomposer.feedback import database
from rlcomposer.feedback.store import new_client_id, open_store


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.delenv("RLCOMPOSER_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    yield url
    database.dispose_engine(url)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_where_follows_flag_then_environment_then_default(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("RLCOMPOSER_DATABASE_URL", raising=False)
    code, out, _ = run(capsys, "db", "where")
    assert code == 0 and out.strip() == str(database.default_database_path())
    assert json.loads(run(capsys, "db", "where", "--json")[1])["source"] == "default"
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    assert run(capsys, "db", "where")[1] == f"{tmp_path / 'env.sqlite3'}\n"
    assert json.loads(run(capsys, "db", "where", "--json")[1]) == {
        "url": f"sqlite:///{tmp_path / 'env.sqlite3'}", "path": str(tmp_path / "env.sqlite3"),
        "source": "$RLCOMPOSER_DATABASE_URL"}
    code, out, _ = run(capsys, "db", "where", "--db", f"sqlite:///{tmp_path / 'flag.sqlite3'}", "--json")
    assert json.loads(out)["path"] == str(tmp_path / "flag.sqlite3") and json.loads(out)["source"] == "--db"
    code, out, err = run(capsys, "db", "where", "--db", " ")
    assert code == 2 and out == "" and err == (
        "rlcomposer: error: --db is empty: give a URL such as sqlite:///ratings.sqlite3\n")


def test_db_upgrade_current_downgrade(capsys, db):
    head = database.head_revision()
    code, out, err = run(capsys, "db", "current", "--db", db)  # read-only: creates no database
    assert code == 2 and "does not exist" in err and not database.sqlite_path(db).exists()
    code, out, _ = run(capsys, "db", "upgrade", "--db", db)
    assert code == 0 and out == f"database {db}: empty -> {head}\n"
    code, out, _ = run(capsys, "db", "upgrade", "--db", db, "--json")
    assert json.loads(out) == {"url": db, "from": head, "to": head}
    assert run(capsys, "db", "current", "--db", db)[1] == f"{db}: revision {head}, newest {head} (up to date)\n"
    code, out, _ = run(capsys, "db", "downgrade", "--db", db, "--revision", "base")
    assert code == 0 and out == f"database {db}: {head} -> empty\n"
    assert json.loads(run(capsys, "db", "current", "--db", db, "--json")[1]) == {
        "url": db, "current": None, "head": head}


@pytest.mark.parametrize("url, reason", [
    ("mysql://u@h/db", "unsupported database"),
    ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "is unavailable"),
])
def test_bad_or_unreachable_databases_fail_with_one_line(capsys, url, reason):
    for command in ("upgrade", "current"):
        code, out, err = run(capsys, "db", command, "--db", url)
        assert code == 2 and out == ""
        assert err.startswith("rlcomposer: error:") and reason in err and len(err.strip().splitlines()) == 1


def test_db_downgrade_to_an_unknown_revision(capsys, db):
    run(capsys, "db", "upgrade", "--db", db)
    code, _, err = run(capsys, "db", "downgrade", "--db", db, "--revision", "nope")
    assert code == 2 and "'nope'" in err


def test_pool_add_samples_into_the_database_once(capsys, db, tiny_prior_dir):
    code, out, _ = run(capsys, "pool", "add", "--db", db, "--model", str(tiny_prior_dir), "--n", "4",
                       "--tag", "round1", "--seed", "3", "--experiment", "exp-a", "--json")
    result = json.loads(out)
    assert code == 0 and result["added"] == 4 and len(result["melody_ids"]) == 4
    store = open_store(db)
    record = store.get_melody(result["melody_ids"][0])
    assert (record.tag, record.seed, record.experiment, record.melody.num_steps) == ("round1", 3, "exp-a", 64)
    assert record.model == str(tiny_prior_dir.resolve())
    assert store.models()[0]["config"]["kind"] == "prior"
    assert (result["db"], result["tag"], result["model"], result["already_there"]) == (
        db, "round1", str(tiny_prior_dir.resolve()), 0)
    assert [r.seed for r in map(store.get_melody, result["melody_ids"])] == [3, 3, 3, 3]
    code, out, _ = run(capsys, "pool", "add", "--db", db, "--model", str(tiny_prior_dir), "--n", "4",
                       "--tag", "round1", "--seed", "3")
    assert code == 0 and out.splitlines()[-1] == f"added 0 melodies to tag 'round1' in {db} (4 were already there)"
    assert store.counts()["melodies"] == 4


@pytest.mark.parametrize("argv, reason", [
    (["--tag", " "], "tag"),
    (["--tag", "t", "--model", "no/such/dir"], "unknown model 'no/such/dir'"),
    (["--tag", "t", "--bars", "0"], "--bars"),
])
def test_pool_add_bad_input_stores_nothing(capsys, db, argv, reason):
    code, _, err = run(capsys, "pool", "add", "--db", db, "--model", "random", "--n", "2", *argv)
    assert code == 2 and reason in err and len(err.strip().splitlines()) == 1
    assert open_store(db).counts()["melodies"] == 0


EARLIER_COLUMNS = [
    "kind", "id", "client_id", "created_at", "rater", "rater_kind", "session_id",
    "stars", "choice", "shown_left", "is_repeat", "listened_ms", "answer_ms",
    "melody_id", "melody_tag", "melody_model", "melody_seed", "melody_tokens",
    "melody_b_id", "melody_b_tag", "melody_b_model", "melody_b_seed", "melody_b_tokens", "study_id", "study"]
"""The export's columns before each melody's metre, key and pick-up were added (they keep their place)."""


def test_ratings_export_csv_and_jsonl(capsys, db, tmp_path):
    from rlcomposer.music.keys import Key

    store = open_store(db)
    ann, bob = store.sign_in("Ann"), store.sign_in("Bob")
    melodies = _melodies(3)
    melodies[0] = melodies[0].with_metre("6/8", Key("G", "major"), pickup_steps=4)
    ids = store.add_melodies(melodies, "prior", model="prior").ids
    store.submit_rating(new_client_id(), ann.id, ids[0], 5)
    store.submit_comparison(new_client_id(), bob.id, ids[1], ids[2], "a", "b")
    code, out, _ = run(capsys, "ratings", "export", "--db", db, "--out", str(tmp_path / "all.csv"))
    assert code == 0 and out == f"wrote 2 ratings and comparisons to {tmp_path / 'all.csv'}\n"
    header = (tmp_path / "all.csv").read_text().splitlines()[0].split(",")
    assert header == EARLIER_COLUMNS + ["melody_metre", "melody_key", "melody_pickup_steps",
                                        "melody_b_metre", "melody_b_key", "melody_b_pickup_steps"]
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert [(r["kind"], r["rater"], r["stars"], r["choice"]) for r in rows] == [
        ("stars", "Ann", "5", ""), ("comparison", "Bob", "", "a")]
    assert [(r["melody_metre"], r["melody_key"], r["melody_pickup_steps"], r["melody_b_metre"]) for r in rows] == [
        ("6/8", "G major", "4", ""), ("4/4", "C major", "0", "4/4")]
    code, out, _ = run(capsys, "ratings", "export", "--db", db, "--format", "jsonl", "--rater", "Bob")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["rater"], r["melody_id"], r["melody_b_id"], r["shown_left"]) for r in lines] == [
        ("Bob", ids[1], ids[2], "b")]
    assert [(r["melody_metre"], r["melody_key"], r["melody_pickup_steps"], r["melody_b_key"]) for r in lines] == [
        ("4/4", "C major", 0, "C major")]
    code, out, _ = run(capsys, "ratings", "export", "--db", db, "--format", "jsonl", "--rater", "Ann")
    assert [(r["melody_metre"], r["melody_key"], r["melody_pickup_steps"])
            for r in map(json.loads, out.splitlines())] == [("6/8", "G major", 4)]


@pytest.mark.parametrize("out, fmt, reason", [
    ("missing/dir/x.csv", None, "does not exist"),
    (".", None, "is a folder"),
    ("x.txt", None, "give --format"),
    ("x.csv", "jsonl", "ends in .csv but the format is jsonl"),
])
def test_ratings_export_bad_paths(capsys, db, tmp_path, monkeypatch, out, fmt, reason):
    monkeypatch.chdir(tmp_path)
    argv = ["ratings", "export", "--db", db, "--out", out] + (["--format", fmt] if fmt else [])
    code, _, err = run(capsys, *argv)
    assert code == 2 and reason in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / out).is_file()


def test_app_passes_streamlit_options_through(capsys, db, monkeypatch):
    calls = []
    monkeypatch.setattr(cli_app, "run_forwarding_signals", lambda command, env: calls.append((command, env)) or 0)
    code, _, err = run(capsys, "app", "--db", db, "--server.port", "8599", "--server.headless", "true")
    assert code == 0, err
    command, env = calls[0]
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app.py")
    assert command[5:9] == ["--server.port", "8599", "--server.headless", "true"]
    assert "--client.toolbarMode" in command
    assert env["RLCOMPOSER_DATABASE_URL"] == db
    assert database.current_revision(db) == database.head_revision()  # migrated before start


def test_app_refuses_a_database_that_is_down(capsys, monkeypatch):
    monkeypatch.setattr(cli_app, "run_forwarding_signals", lambda *a, **k: pytest.fail("started anyway"))
    code, _, err = run(capsys, "app", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    assert code == 2 and "is unavailable" in err


def _melodies(n):
    import numpy as np

    from rlcomposer.music.melody import random_melody

    rng = np.random.default_rng(5)
    return [random_melody(rng, 16) for _ in range(n)]
