"""Issue 18, items 9, 10, 11 and 13: commands that never lose a run.

Each case is reproduced through the command line and must end in one line on
stderr, a non-zero exit status and nothing changed on disk (except where the
command is asked to change it: ``--overwrite``, ``--resume``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlcomposer.cli import main
from rlcomposer.config import (
    MAX_SHOWN_VALUE_CHARS,
    ConfigError,
    config_to_dict,
    load_yaml,
    read_text_file,
)
from rlcomposer.experiments.loop import ExperimentConfig
from rlcomposer.rl.resume import truncate_history

TINY_TUNE = ["--set", "num_bars=1", "--set", "n_envs=8", "--set", "minibatch_episodes=4",
             "--set", "theory_motif=1", "--set", "theory_in_key=1"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcomposer: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with a hash of its bytes."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def alias_bomb() -> str:
    """9 levels of 10-element lists under one key, about 300 bytes: 10^9 values when expanded."""
    levels = ["&l0 [" + ", ".join(["1"] * 10) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 8)]
    levels.append("[" + ", ".join(["*l7"] * 10) + "]")
    return "seed: [" + ", ".join(levels) + "]\n"


# ------------------------------------------------------------------ item 9
def test_alias_bomb_in_a_config_file_is_refused_in_one_line(tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text(alias_bomb())
    assert len(config.read_bytes()) < 1024
    code, out, err = run(capsys, "prior", "train", "--config", config, "--out", tmp_path / "prior")
    assert_one_line_error(code, err, str(config), "aliases", "1,234,567,902 values")
    assert out == "" and snapshot(tmp_path) == {"bomb.yaml": hashlib.sha1(config.read_bytes()).hexdigest()}


def test_alias_bomb_in_an_override_and_a_self_referencing_alias_are_refused(tmp_path, capsys):
    code, _, err = run(capsys, "prior", "train", "--set", alias_bomb().removeprefix("seed: ").strip().join(
        ["seed=", ""]), "--out", tmp_path / "prior")
    assert_one_line_error(code, err, "override 'seed'", "aliases")
    with pytest.raises(ConfigError, match="refers to itself"):
        load_yaml("a: &a [1, *a]\n", "x.yaml")
    assert load_yaml("a: &a [1, 2]\nb: *a\n", "x.yaml") == {"a": [1, 2], "b": [1, 2]}  # small aliases still work
    assert not (tmp_path / "prior").exists()


def test_a_long_wrong_value_is_cut_in_the_message(tmp_path, capsys):
    numbers = "[" + ",".join(str(i) for i in range(5000)) + "]"
    code, _, err = run(capsys, "prior", "train", "--set", f"seed={numbers}", "--out", tmp_path / "prior")
    assert_one_line_error(code, err, "config key 'seed': expected an integer, got [0, 1, 2")
    assert "..." in err and len(err) < 200 + MAX_SHOWN_VALUE_CHARS
    assert not (tmp_path / "prior").exists()


# ----------------------------------------------------------------- item 10
def _old_run(folder: Path) -> dict[str, str]:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "ppo_999_steps.zip").write_bytes(b"an old run's checkpoint")
    (folder / "model.pt").write_bytes(b"an old run's policy")
    (folder / "history.jsonl").write_text('{"timesteps": 999}\n')
    return snapshot(folder)


def test_tune_into_an_existing_run_is_refused_without_overwrite(tmp_path, tiny_prior_dir, capsys):
    before = _old_run(tmp_path / "run")
    code, out, err = run(capsys, "tune", "--prior", tiny_prior_dir, *TINY_TUNE, "--total-timesteps", "128",
                         "--out", tmp_path / "run")
    assert_one_line_error(code, err, f"--out '{tmp_path / 'run'}' already holds a run", "--overwrite")
    assert snapshot(tmp_path / "run") == before


def test_tune_overwrite_replaces_the_old_run_and_keeps_it_when_refused(tmp_path, tiny_prior_dir, capsys):
    before = _old_run(tmp_path / "run")
    # a run that is refused inside tuning (nothing to tune for) gives the old run back
    code, _, err = run(capsys, "tune", "--prior", tiny_prior_dir, "--set", "num_bars=1",
                       "--total-timesteps", "128", "--out", tmp_path / "run", "--overwrite")
    assert_one_line_error(code, err, "nothing to tune for")
    assert snapshot(tmp_path / "run") == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    code, _, err = run(capsys, "tune", "--prior", tiny_prior_dir, *TINY_TUNE, "--set", "checkpoint_every=0",
                       "--total-timesteps", "128", "--out", tmp_path / "run", "--overwrite", "--quiet")
    assert code == 0, err
    assert not (tmp_path / "run" / "checkpoints" / "ppo_999_steps.zip").exists()  # no old checkpoints beside it
    assert (tmp_path / "run" / "model.pt").read_bytes() != b"an old run's policy"
    assert [json.loads(line)["timesteps"] for line in (tmp_path / "run" / "history.jsonl").open()] == [128]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old run is gone, not hidden beside it


def _finished_experiment(folder: Path, config: ExperimentConfig) -> dict[str, str]:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    (folder / "state.json").write_text(json.dumps({"round": 1, "results": [{"round": 0}]}))
    (folder / "report.md").write_text("# the old results\n")
    return snapshot(folder)


def test_experiment_run_into_a_finished_run_with_other_settings_is_refused(tmp_path, capsys):
    before = _finished_experiment(tmp_path / "runs" / "mine", ExperimentConfig(name="mine", rounds=1))
    config = tmp_path / "mine.yaml"
    config.write_text("name: mine\nrounds: 2\n")
    code, out, err = run(capsys, "experiment", "run", config, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(code, err, "holds a run with other settings (rounds: 1 there, 2 now, 1 of 1 rounds done)",
                          "experiment resume", "--overwrite")
    assert out == "" and snapshot(tmp_path / "runs" / "mine") == before
    # --overwrite replaces it only once the new run starts: a refused one gives the old run back
    config.write_text("name: mine\nrounds: 2\nlistener: nowhere:nothing\n")
    code, _, err = run(capsys, "experiment", "run", config, "--runs-dir", tmp_path / "runs", "--overwrite")
    assert_one_line_error(code, err, "nowhere")
    assert snapshot(tmp_path / "runs" / "mine") == before and sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mine"]
    # a folder with files that are no run is refused too
    (tmp_path / "runs" / "other").mkdir()
    (tmp_path / "runs" / "other" / "notes.txt").write_text("mine")
    config.write_text("name: other\n")
    code, _, err = run(capsys, "experiment", "run", config, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(code, err, "no experiment run (no config.yaml)")
    assert (tmp_path / "runs" / "other" / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------- item 11
def test_truncate_history_cuts_abandoned_rows_and_a_half_written_line(tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps({"timesteps": t, "kl_beta": t / 100}) + "\n" for t in (128, 256, 384))
                       + '{"timesteps": 51')
    assert truncate_history(history, 256) == 2
    assert [json.loads(line)["timesteps"] for line in history.read_text().splitlines()] == [128, 256]
    assert truncate_history(history, 256) == 0 and truncate_history(tmp_path / "none.jsonl", 0) == 0


def test_resume_from_an_earlier_checkpoint_drops_the_abandoned_steps(tmp_path, tiny_prior_dir, capsys):
    out = tmp_path / "run"
    common = ["tune", "--prior", tiny_prior_dir, *TINY_TUNE, "--set", "checkpoint_every=128",
              "--total-timesteps", "384", "--out", out, "--quiet"]
    code, _, err = run(capsys, *common)
    assert code == 0, err
    first = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["timesteps"] for h in first] == [128, 256, 384]
    code, _, err = run(capsys, *common, "--resume", out / "checkpoints" / "ppo_128_steps.zip")
    assert code == 0, err
    again = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["timesteps"] for h in again] == [128, 256, 384]  # once each, in order
    assert again[0] == first[0]  # the rows before the checkpoint are kept as they were


# ----------------------------------------------------------------- item 13
@pytest.mark.timeout(60)
def test_a_device_or_a_fifo_as_a_config_is_refused_unread(tmp_path, capsys):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    for path in ("/dev/zero", fifo):
        code, _, err = run(capsys, "prior", "train", "--config", path, "--out", tmp_path / "prior")
        assert_one_line_error(code, err, f"{path}: not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.fifo"]


@pytest.mark.timeout(60)
def test_sweep_files_are_checked_for_size_kind_and_encoding(tmp_path, capsys):
    (tmp_path / "latin1.yaml").write_bytes("experiment: caf\xe9.yaml\n".encode("latin-1"))
    (tmp_path / "huge.yaml").write_text("# " + "x" * (1024 * 1024) + "\n")
    cases = {"latin1.yaml": "not a text file (not UTF-8), byte 0xe9 at offset 15",
             "huge.yaml": "larger than 1,048,576 bytes", "/dev/zero": "not a regular file"}
    for name, message in cases.items():
        path = tmp_path / name if not name.startswith("/") else Path(name)
        code, _, err = run(capsys, "sweep", "run", path, "--out", tmp_path / "sweep")
        assert_one_line_error(code, err, "sweep file", message)
    assert not (tmp_path / "sweep").exists()


def test_study_text_files_are_checked_before_the_database_is_touched(tmp_path, capsys):
    db = tmp_path / "ratings.sqlite3"
    (tmp_path / "instructions.txt").write_bytes(b"Listen \xff and choose")
    (tmp_path / "consent.txt").write_text("I agree. " * 10_000)
    for option, name, message in (("--instructions-file", "instructions.txt", "not UTF-8), byte 0xff at offset 7"),
                                  ("--consent-file", "consent.txt", "larger than 65,536 bytes"),
                                  ("--consent-file", "/dev/zero", "not a regular file")):
        path = tmp_path / name if not name.startswith("/") else name
        code, _, err = run(capsys, "study", "create", "s1", option, path, "--db", db)
        assert_one_line_error(code, err, f"cannot read the {option[2:-5]} file {path}", message)
    assert not db.exists()
    assert read_text_file(tmp_path / "consent.txt").startswith("I agree.")  # the reader itself has no such bound


def test_an_absurd_reward_is_refused_naming_the_function_and_the_melody(tmp_path, tiny_prior_dir, capsys,
                                                                         monkeypatch):
    (tmp_path / "huge_reward.py").write_text("def score(melody):\n    return 1e300\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = run(capsys, "tune", "--reward", "huge_reward:score", "--prior", tiny_prior_dir, *TINY_TUNE,
                       "--total-timesteps", "128", "--out", tmp_path / "run", "--quiet")
    assert_one_line_error(code, err, "reward function huge_reward:score returned 1e+300, beyond ±1e+06",
                          "for melody 0 (tokens ")
    assert not (tmp_path / "run").exists()


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "the-file")


def test_a_full_disk_in_generate_is_one_line_and_keeps_the_old_melodies(tmp_path, tiny_prior_dir, capsys,
                                                                          monkeypatch):
    from rlcomposer.music.melody import Melody

    code, _, err = run(capsys, "generate", "--model", tiny_prior_dir, "--n", "2", "--bars", "1",
                       "--format", "json", "--out", tmp_path / "old", "--quiet")
    assert code == 0, err
    before = snapshot(tmp_path)
    monkeypatch.setattr(Melody, "save", _no_space)
    for out in ("old", "new"):
        code, _, err = run(capsys, "generate", "--model", tiny_prior_dir, "--n", "2", "--bars", "1", "--seed", "3",
                           "--format", "json", "--out", tmp_path / out, "--overwrite", "--quiet")
        assert_one_line_error(code, err, f"cannot write --out '{tmp_path / out}' (the-file): No space left")
    assert snapshot(tmp_path) == before


def test_a_full_disk_in_tune_is_one_line_and_loses_nothing(tmp_path, tiny_prior_dir, capsys, monkeypatch):
    import rlcomposer.rl.tuning as tuning

    argv = ["tune", "--prior", tiny_prior_dir, *TINY_TUNE, "--set", "checkpoint_every=0",
            "--total-timesteps", "128", "--out", tmp_path / "run", "--quiet"]
    with monkeypatch.context() as patch:  # the disk is full from the start: the run leaves nothing
        patch.setattr(tuning, "atomic_write_text", _no_space)
        code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, f"cannot write --out '{tmp_path / 'run'}' (the-file): No space left")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(tuning, "save_model_dir", _no_space)  # it fills as the trained policy is written
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, "No space left")
    assert "--resume" in out and (tmp_path / "run" / "checkpoints" / "final.zip").is_file()  # the training is kept


@pytest.mark.parametrize("argv", [["study", "list"], ["study", "close", "s1"],
                                  ["ratings", "simulate", "--listener", "lyrical", "--pairs", "3"]])
def test_a_mistyped_database_path_is_not_created(tmp_path, capsys, argv):
    code, _, err = run(capsys, *argv, "--db", tmp_path / "ratngs.sqlite3")
    assert_one_line_error(code, err, f"database file '{tmp_path / 'ratngs.sqlite3'}' (from --db) does not exist")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_experiment_name_or_listener_leaves_no_run_folder(tmp_path, capsys):
    config = tmp_path / "e.yaml"
    config.write_text('name: " padded"\nlistener: nowhere:nothing\n')  # the name is refused first
    code, _, err = run(capsys, "experiment", "run", config, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(code, err, "experiment name ' padded' cannot name the pool tags")
    code, _, err = run(capsys, "experiment", "run", config, "--set", f"name={'n' * 250}", "--runs-dir",
                       tmp_path / "runs")
    assert_one_line_error(code, err, "is longer than 200 bytes")
    config.write_text("name: nolistener\nlistener: nowhere:nothing\n")
    code, _, err = run(capsys, "experiment", "run", config, "--runs-dir", tmp_path / "runs")
    assert_one_line_error(code, err, "nowhere")
    assert snapshot(tmp_path / "runs") in ({}, {"": "dir"}) and not (tmp_path / "runs" / "nolistener").exists()


def test_python_dash_m_never_imports_the_working_directorys_numpy(tmp_path, tiny_prior_dir):
    (tmp_path / "numpy.py").write_text("raise SystemExit('the numpy.py of the working directory was imported')\n")
    (tmp_path / "my_taste.py").write_text("def score(melody):\n    return float(len(melody.notes()))\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "rlcomposer.cli", "generate", "--model", str(tiny_prior_dir), "--n", "1",
         "--bars", "1", "--best-of", "2", "--reward", "my_taste:score", "--format", "json", "--out", "out",
         "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "working directory was imported" not in result.stderr
    assert (tmp_path / "out" / "melody-000.json").is_file()  # the reward in the working directory was found


def _rated_database(path: Path, tiny_prior_dir) -> str:
    from rlcomposer.feedback.database import dispose_engine

    url = f"sqlite:///{path}"
    assert main(["pool", "add", "--model", str(tiny_prior_dir), "--n", "3", "--bars", "1", "--tag", "t",
                 "--db", url, "--quiet"]) == 0
    dispose_engine(url)  # closed: no -wal or -shm beside it
    return url


def test_read_only_sqlite_url_exports_without_writing(tmp_path, tiny_prior_dir, capsys):
    url = _rated_database(tmp_path / "ratings.sqlite3", tiny_prior_dir)
    before = (tmp_path / "ratings.sqlite3").read_bytes()
    code, out, err = run(capsys, "ratings", "export", "--db", f"{url}?mode=ro", "--out", "-")
    assert code == 0, err
    assert out.startswith("kind,id,") and (tmp_path / "ratings.sqlite3").read_bytes() == before
    code, _, err = run(capsys, "ratings", "export", "--db", f"sqlite:///{tmp_path / 'none.sqlite3'}?mode=ro",
                       "--out", "-")
    assert_one_line_error(code, err, "does not exist")
    assert not (tmp_path / "none.sqlite3").exists()


def test_a_database_on_a_read_only_filesystem_exports_with_mode_ro(tmp_path, tiny_prior_dir, capsys):
    """On a real read-only mount (needs the right to mount: skipped elsewhere)."""
    source = _rated_database(tmp_path / "ratings.sqlite3", tiny_prior_dir)
    mount = tmp_path / "media"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a filesystem here")
    try:
        (mount / "ratings.sqlite3").write_bytes(Path(source.removeprefix("sqlite:///")).read_bytes())
        assert subprocess.run(["mount", "-o", "remount,ro", str(mount)]).returncode == 0
        code, out, err = run(capsys, "ratings", "export", "--db", f"sqlite:///{mount / 'ratings.sqlite3'}?mode=ro",
                             "--out", "-")
        assert code == 0, err
        assert out.startswith("kind,id,")
        assert sorted(p.name for p in mount.iterdir()) == ["ratings.sqlite3"]
    finally:
        from rlcomposer.feedback.database import dispose_engine

        dispose_engine(f"sqlite:///{mount / 'ratings.sqlite3'}?mode=ro")
        subprocess.run(["umount", str(mount)])
