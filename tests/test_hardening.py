"""Bad input, careful or hostile: each ends in one line naming the input and the reason, exit 2, nothing written.

One test per hole a probe of every command found (issue: hardening): code from the
working directory, unbounded sizes, non-finite and out-of-range numbers, unchecked
resumes, databases that are missing or not databases, half-written run folders.
"""

from __future__ import annotations

import gc
import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from rlcomposer.checkpoints import TrainingDiverged, read_model_dir, save_model_dir
from rlcomposer.cli import main
from rlcomposer.config import load_config
from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import MAX_BARS, Melody, MelodyError, random_melody
from rlcomposer.rl.tuning import TuneConfig, tune

REPO = Path(__file__).resolve().parent.parent
TINY_RUN = {"num_bars": 1, "n_envs": 4, "minibatch_episodes": 4, "theory_in_key": 1.0, "threads": 1,
            "checkpoint_every": 64}


def one_line_error(capsys, code: int) -> str:
    """The single stderr line of a command that ended with exit 2."""
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("rlcomposer: error:"), err
    return lines[0]


def run_module(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rlcomposer.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


# ------------------------------------------------------ code from the working directory
def test_a_module_in_the_working_directory_does_not_shadow_an_installed_package(tmp_path):
    marker = tmp_path / "shadow-ran"
    (tmp_path / "mido.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    result = run_module(["generate", "--model", "random", "--n", "1", "--format", "midi", "--out", "out"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert mido.MidiFile(tmp_path / "out" / "melody-000.mid").tracks  # written by the real mido


def test_rewards_in_the_working_directory_and_in_a_file_are_still_found(tmp_path, monkeypatch, capsys):
    (tmp_path / "hardening_taste.py").write_text("def score(melody):\n    return float(melody.tokens[0])\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "taste.py").write_text("def score(melody):\n    return -float(melody.tokens[0])\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for reward in ("hardening_taste:score", "elsewhere/taste.py:score", f"{tmp_path}/elsewhere/taste.py:score"):
        out = tmp_path / reward.replace("/", "_").replace(":", "_")
        assert main(["generate", "--model", "random", "--n", "1", "--best-of", "2", "--reward", reward,
                     "--format", "json", "--out", str(out)]) == 0, capsys.readouterr().err
    assert sys.path[-1] == str(tmp_path)  # the working directory is searched, last
    assert main(["generate", "--model", "random", "--best-of", "2", "--reward", "missing.py:score",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no file" in capsys.readouterr().err


def test_help_says_where_rewards_and_listeners_are_found(capsys):
    for command in (["generate"], ["tune"], ["evaluate"], ["ratings", "simulate"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "never shadows an installed package" in text and "path/to/file.py:function" in text


# ------------------------------------------------------------------------- bounds
def test_generate_bars_at_the_limit_works_and_one_past_it_is_refused_at_once(tmp_path, capsys):
    assert MAX_BARS == 32
    assert main(["generate", "--model", "random", "--n", "1", "--bars", "32", "--format", "json",
                 "--out", str(tmp_path / "ok")]) == 0
    assert Melody.load(tmp_path / "ok" / "melody-000.json").num_steps == 32 * 16
    capsys.readouterr()
    for bars in ("33", "100000"):
        gc.collect()  # a collection of the whole suite's garbage must not land in the timed refusal
        started = time.monotonic()
        code = main(["generate", "--bars", bars, "--out", str(tmp_path / "no")])
        assert time.monotonic() - started < 1.0
        assert "--bars must be from 1 to 32, got " + bars in one_line_error(capsys, code)
    assert not (tmp_path / "no").exists()


def _midi(ticks_per_beat: int, delta: int) -> bytes:
    midi = mido.MidiFile(ticks_per_beat=max(ticks_per_beat, 1))
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, time=delta))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    data = bytearray(buffer.getvalue())
    data[12:14] = ticks_per_beat.to_bytes(2, "big")  # the header's division field
    return bytes(data)


def test_a_tiny_midi_file_with_huge_delta_times_is_refused_before_allocating():
    data = _midi(1, 0x0FFFFFFF)
    assert len(data) < 70
    tracemalloc.start()
    try:
        with pytest.raises(MelodyError, match="past the limit"):
            Melody.from_midi_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_midi_with_zero_ticks_per_beat_is_a_melody_error(tmp_path, capsys):
    path = tmp_path / "zero.mid"
    path.write_bytes(_midi(0, 10))
    with pytest.raises(MelodyError, match="ticks per beat 0"):
        Melody.load(path)


@pytest.mark.parametrize("tokens, reason", [
    ([10**23], "outside the vocabulary"),
    ([True, False, 1], "must be a list of integers"),
    ([5] * 5000, "more than the limit"),
])
def test_json_tokens_that_are_huge_booleans_or_too_many_are_melody_errors(tokens, reason):
    with pytest.raises(MelodyError, match=reason):
        Melody.from_json(json.dumps({"format": "rlcomposer.melody", "version": 1, "tokens": tokens}))


def test_deeply_nested_json_is_a_melody_error():
    with pytest.raises(MelodyError, match="nested too deeply"):
        Melody.from_json("[" * 100_000 + "]" * 100_000)


def test_a_file_larger_than_the_limit_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.truncate(64 * 2**20)  # sparse: 64 MiB of zeros
    with pytest.raises(MelodyError, match="larger than the limit"):
        Melody.load(path)


def test_compressed_musicxml_is_read(tmp_path):
    melody = random_melody(np.random.default_rng(3), 32)
    path = tmp_path / "tune.mxl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/container.xml", '<?xml version="1.0"?><container><rootfiles>'
                                                   '<rootfile full-path="score/tune.xml"/></rootfiles></container>')
        archive.writestr("score/tune.xml", melody.to_musicxml_bytes())
    assert Melody.load(path) == melody.canonical()
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(MelodyError, match="not a readable MusicXML"):
        Melody.load(path)


# --------------------------------------------------- non-finite and out-of-range numbers
@pytest.mark.parametrize("args, message", [
    (["generate", "--temperature", "nan"], "--temperature must be in (0, 100], got nan"),
    (["generate", "--top-k", "1000"], "--top-k must be from 1 to 39 (or null), got 1000"),
    (["generate", "--tempo", "nan"], "--tempo must be from 20 to 400, got nan"),
    (["tune", "--kl-beta", "nan"], "kl_beta must be 0 or more, got nan"),
    (["tune", "--set", "learning_rate=inf"], "learning_rate must be in (0, 1], got inf"),
    (["tune", "--set", "learning_rate=.nan"], "learning_rate must be in (0, 1], got nan"),
    (["tune", "--set", "threads=0"], "threads must be from 1 to 256, got 0"),
    (["tune", "--set", "clip_range=-1"], "clip_range must be in (0, 1], got -1"),
    (["tune", "--set", "gamma=2"], "gamma must be from 0 to 1, got 2"),
    (["tune", "--kl-target", "inf"], "kl_target must be above 0 (or null), got inf"),
    (["reward", "train", "--set", "learning_rate=nan"], "learning_rate must be in (0, 1], got nan"),
    (["prior", "train", "--set", "learning_rate=nan"], "learning_rate must be in (0, 1], got nan"),
    (["experiment", "run", "CONFIG", "--set", "noise_temperature=nan"], "listener noise temperature nan must be 0 or more"),
])
def test_non_finite_and_out_of_range_numbers_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    config = tmp_path / "experiment.yaml"
    config.write_text("name: probe\n")
    args = [a.replace("CONFIG", str(config)) for a in args]
    out_option = "--runs-dir" if args[0] == "experiment" else "--out"
    code = main([*args, out_option, str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
                if args[0] == "prior" else [*args, out_option, str(tmp_path / "out")])
    assert message in one_line_error(capsys, code)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.yaml"]  # nothing written


def test_a_model_directory_with_nan_weights_is_one_line(tmp_path, capsys, tiny_prior_dir):
    files = read_model_dir(tiny_prior_dir)
    state = {k: v.clone() for k, v in files.state_dict.items()}
    name = next(iter(state))
    state[name].view(-1)[0] = float("nan")
    broken = tmp_path / "nan-prior"
    broken.mkdir()
    torch.save(state, broken / "model.pt")
    (broken / "config.json").write_text((tiny_prior_dir / "config.json").read_text())
    code = main(["generate", "--model", str(broken), "--out", str(tmp_path / "out")])
    assert f"tensor '{name}' holds NaN or infinite values" in one_line_error(capsys, code)
    assert not (tmp_path / "out").exists()
    with pytest.raises(TrainingDiverged, match="refusing to write"):
        save_model_dir(tmp_path / "copy", "prior", files.config["model"], state)
    assert not (tmp_path / "copy").exists()


def test_reward_training_that_diverges_says_where_and_writes_no_model(tmp_path, monkeypatch, tiny_prior_dir):
    from rlcomposer.preferences.reward_model import PairLabel, RewardModelConfig, train_reward_model
    from rlcomposer.prior.model import load_prior

    rng = np.random.default_rng(0)
    melodies = [random_melody(rng, 16) for _ in range(40)]
    comparisons = [PairLabel(melodies[i].tokens, melodies[i + 1].tokens, "a" if i % 3 else "b")
                   for i in range(0, 40, 2)] * 2
    original = torch.optim.AdamW.step

    def diverging_step(self, *args, **kwargs):  # what too large a learning rate does, made certain
        result = original(self, *args, **kwargs)
        with torch.no_grad():
            for group in self.param_groups:
                for parameter in group["params"]:
                    parameter.fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", diverging_step)
    config = RewardModelConfig(ensemble_size=3, epochs=3, cv_folds=0, reference_melodies=16, learning_rate=0.5)
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 1 of epoch 2 with learning_rate=0.5"):
        train_reward_model(comparisons, [], config, load_prior(str(tiny_prior_dir)), log=lambda _: None)


def test_tuning_that_diverges_stops_at_the_next_rollout_and_writes_no_model(tmp_path, monkeypatch, tiny_prior_dir):
    from rlcomposer.rl.sequence_ppo import SequencePPO

    original = SequencePPO.train

    def diverging_train(self):
        original(self)
        with torch.no_grad():
            next(self.policy.parameters()).fill_(float("nan"))

    monkeypatch.setattr(SequencePPO, "train", diverging_train)
    config = load_config(TuneConfig, None, {**TINY_RUN, "prior": str(tiny_prior_dir), "total_timesteps": 256,
                                            "checkpoint_every": 0, "learning_rate": 0.5})
    with pytest.raises(TrainingDiverged, match=r"before step 64 with learning_rate=0.5"):
        tune(config, tmp_path / "run", progress=False, log=lambda _: None)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------ resume
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_prior_dir):
    """A tiny sequence-PPO run of 256 steps with checkpoints every 64."""
    out = tmp_path_factory.mktemp("runs") / "run"
    config = load_config(TuneConfig, None, {**TINY_RUN, "prior": str(tiny_prior_dir), "total_timesteps": 256})
    tune(config, out, progress=False, log=lambda _: None)
    return out


@pytest.mark.parametrize("change, reason", [
    ({"n_envs": 8}, "n_envs 4, this run 8"),
    ({"algorithm": "stock"}, "algorithm sequence, this run stock"),
    ({"num_bars": 2}, "episodes of 16 steps, this run 32"),
    ({"prior": "prior"}, "another prior than this run's"),
    ({"total_timesteps": 128}, "at step 128, already at or past this run's total_timesteps 128"),
])
def test_resume_refuses_another_runs_checkpoint_and_writes_nothing(tmp_path, capsys, finished_run,
                                                                   tiny_prior_dir, change, reason):
    settings = {**TINY_RUN, "prior": str(tiny_prior_dir), "total_timesteps": 512, **change}
    argv = ["tune", "--out", str(tmp_path / "run"), "--resume", str(finished_run / "checkpoints" / "ppo_128_steps.zip")]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    code = main(argv)
    assert reason in one_line_error(capsys, code)
    assert not (tmp_path / "run").exists()  # no tune_config.json left behind


def test_resume_honours_the_step_budget(tmp_path, finished_run, tiny_prior_dir):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = load_config(TuneConfig, None, {**TINY_RUN, "prior": str(tiny_prior_dir), "total_timesteps": 384})
    metrics = tune(config, run, resume=run / "checkpoints" / "ppo_192_steps.zip", progress=False,
                   log=lambda _: None)
    assert metrics["timesteps"] == 384


# ------------------------------------------------------------------- run folders
def test_a_tune_failing_before_its_first_checkpoint_removes_its_folder(tmp_path, tiny_prior_dir):
    calls = []

    def failing_reward(melody):
        calls.append(1)
        raise ValueError("the listener left")

    config = load_config(TuneConfig, None, {**TINY_RUN, "prior": str(tiny_prior_dir), "total_timesteps": 256,
                                            "reward": "x:y", "theory_in_key": 0.0})
    with pytest.raises(RLComposerError, match="the listener left"):
        tune(config, tmp_path / "run", failing_reward, progress=False, log=lambda _: None)
    assert calls and not (tmp_path / "run").exists()


def test_a_tune_failing_after_a_checkpoint_keeps_it_and_says_how_to_resume(tmp_path, tiny_prior_dir):
    scored = []

    def reward_that_fails_later(melody):
        scored.append(1)
        if len(scored) > 4 * 3:  # the fourth rollout
            raise ValueError("the listener left")
        return 0.0

    config = load_config(TuneConfig, None, {**TINY_RUN, "prior": str(tiny_prior_dir), "total_timesteps": 512,
                                            "reward": "x:y"})
    with pytest.raises(RLComposerError, match=r"continue with --resume .*ppo_192_steps.zip"):
        tune(config, tmp_path / "run", reward_that_fails_later, progress=False, log=lambda _: None)
    run = tmp_path / "run"
    assert not (run / "model.pt").exists() and (run / "history.jsonl").exists() and (run / "tb").is_dir()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "ppo_128_steps.zip", "ppo_192_steps.zip", "ppo_64_steps.zip"]


def test_a_killed_tune_resumes_from_its_last_checkpoint(tmp_path, tiny_prior_dir):
    run = tmp_path / "run"
    argv = ["tune", "--out", str(run), "--quiet", "--total-timesteps", "1000000"]
    for key, value in {**TINY_RUN, "prior": str(tiny_prior_dir)}.items():
        argv += ["--set", f"{key}={value}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "rlcomposer.cli", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not len(list((run / "checkpoints").glob("ppo_*.zip"))) >= 2 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    checkpoints = sorted((run / "checkpoints").glob("ppo_*.zip"), key=lambda p: int(p.stem.split("_")[1]))
    assert len(checkpoints) >= 2 and not (run / "model.pt").exists()  # killed: no final model
    latest = checkpoints[-1]
    step = int(latest.stem.split("_")[1])
    config = load_config(TuneConfig, None, {**TINY_RUN, "prior": str(tiny_prior_dir), "total_timesteps": step + 128})
    metrics = tune(config, run, resume=latest, progress=False, log=lambda _: None)
    assert metrics["timesteps"] == step + 128
    assert read_model_dir(run).kind == "policy"


def test_generate_into_a_folder_of_melodies_refuses_unless_overwrite(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["generate", "--model", "random", "--n", "3", "--format", "json", "--out", out]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    code = main(["generate", "--model", "random", "--n", "1", "--seed", "5", "--format", "json", "--out", out])
    assert "already holds 3 melody files" in one_line_error(capsys, code)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert main(["generate", "--model", "random", "--n", "1", "--seed", "5", "--format", "json", "--out", out,
                 "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["melody-000.json"]  # not mixed with the old run


# ---------------------------------------------------------------------- databases
@pytest.mark.parametrize("command", [["db", "current"], ["ratings", "export", "--out", "OUT/x.csv"],
                                     ["db", "downgrade", "--revision", "base"],
                                     ["reward", "train", "--out", "OUT/rm"],
                                     ["tune", "--algorithm", "dpo", "--out", "OUT/dpo"]])
def test_read_only_commands_refuse_a_database_that_does_not_exist(tmp_path, capsys, command):
    (tmp_path / "OUT").mkdir()
    missing = tmp_path / "mistyped.sqlite3"
    code = main([c.replace("OUT", str(tmp_path / "OUT")) for c in command] + ["--db", str(missing)])
    line = one_line_error(capsys, code)
    assert f"database file '{missing}' (from --db) does not exist" in line
    assert not missing.exists() and not list((tmp_path / "OUT").iterdir())


@pytest.mark.parametrize("command", [["ratings", "export"], ["reward", "train", "--out", "OUT"],
                                     ["tune", "--algorithm", "dpo", "--out", "OUT"]])
def test_reading_ratings_from_a_database_without_rating_tables_is_refused(tmp_path, capsys, command):
    import sqlite3

    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    code = main([c.replace("OUT", str(tmp_path / "out")) for c in command] + ["--db", str(other)])
    assert "holds no rating tables" in one_line_error(capsys, code)
    with sqlite3.connect(other) as connection:  # no rating tables were created in it
        assert [row[0] for row in connection.execute("SELECT name FROM sqlite_master")] == ["notes"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"], ["ratings", "export"],
                                     ["pool", "add", "--tag", "t", "--model", "random", "--n", "1"]])
def test_a_file_that_is_not_a_database_is_one_line(tmp_path, capsys, command):
    bad = tmp_path / "notes.sqlite3"
    bad.write_text("these are my notes, not a database\n")
    code = main([*command, "--db", str(bad)])
    assert f"database file '{bad}' is not a SQLite database" in one_line_error(capsys, code)
    assert bad.read_text() == "these are my notes, not a database\n"


def test_a_prior_config_out_of_range_is_a_checkpoint_error(tmp_path, tiny_prior_dir):
    import shutil

    broken = tmp_path / "prior"
    shutil.copytree(tiny_prior_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["model"]["hidden_size"] = -4
    (broken / "config.json").write_text(json.dumps(config))
    from rlcomposer.prior.model import load_prior

    with pytest.raises(RLComposerError, match="hidden_size must be from 1 to 4096, got -4"):
        load_prior(str(broken))


# ------------------------------------------------ what the fuzzing found (tests/test_fuzz.py)
def test_a_time_signature_of_a_million_beats_is_refused_at_once():
    import re

    xml = random_melody(np.random.default_rng(1), 64).to_musicxml_bytes().decode()
    started = time.monotonic()
    with pytest.raises(MelodyError, match="time signature of 1000000 beats"):
        Melody.from_musicxml_bytes(re.sub(r"<beats>\d+</beats>", "<beats>1000000</beats>", xml).encode())
    assert time.monotonic() - started < 1.0  # music21 itself takes over a minute at 1,000 beats


def test_a_midi_file_of_too_many_messages_is_refused_before_it_is_parsed():
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk" + (300_000).to_bytes(4, "big") + \
        b"\x00\x90\x3c\x50" + b"\x00\x3c\x50" * 99_999
    started = time.monotonic()
    with pytest.raises(MelodyError, match="could hold 150,000 messages, more than the limit of 50,000"):
        Melody.from_midi_bytes(data)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("content, reason", [
    (b"\xff\xfe not text", "not a text file (not UTF-8)"),
    (b"a: " + b"[" * 3000, "brackets nested 3000 deep"),
    (b"? '\n\n  '\n: .nan\n", "unknown key '\\n'"),
    (b"1: 2\nseed: 3\n", "unknown key 1 "),
])
def test_config_files_that_are_binary_deep_or_have_odd_keys_are_one_line(tmp_path, capsys, content, reason):
    path = tmp_path / "tune.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    line = one_line_error(capsys, main(["tune", "--config", str(path), "--out", str(tmp_path / "out")]))
    assert reason in line and time.monotonic() - started < 1.0
    assert not (tmp_path / "out").exists()


def test_a_corpus_cache_folder_that_is_a_file_fails_before_parsing(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.write_text("a file")
    started = time.monotonic()
    code = main(["corpus", "build", "--cache-dir", str(cache), "--workers", "1"])
    assert "cannot create it" in one_line_error(capsys, code) and time.monotonic() - started < 5.0
