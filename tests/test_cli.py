"""The command line: results, --json, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlcomposer.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlcomposer.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_help_explains_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("corpus", "prior", "generate", "evaluate"):
        assert command in result.stdout
    generate_help = run_cli("generate", "--help").stdout
    assert "--seed" in generate_help and "byte-identical" in generate_help


def test_generate_json_and_same_seed_same_bytes(tmp_path, tiny_prior_dir, capsys):
    for out in ("a", "b"):
        assert main(["generate", "--model", str(tiny_prior_dir), "--n", "3", "--seed", "4",
                     "--out", str(tmp_path / out), "--format", "json,midi", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
    assert result["melodies"] == 3 and len(result["files"]) == 6
    for index in range(3):
        name = f"melody-{index:03d}.json"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_generate_from_the_shipped_prior_by_default(tmp_path):
    assert main(["generate", "--n", "2", "--out", str(tmp_path), "--format", "json", "--quiet"]) == 0
    assert len(list(tmp_path.glob("*.json"))) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--n", "0", "--out", "OUT"], "--n must be at least 1"),
        (["generate", "--seed", "-3", "--out", "OUT"], "--seed must be 0 or more"),
        (["generate", "--model", "nosuchmodel", "--out", "OUT"], "unknown model 'nosuchmodel'"),
        (["generate", "--format", "mp3", "--out", "OUT"], "unknown format 'mp3'"),
        (["prior", "train", "--set", "hiden_size=3", "--cache-dir", "CACHE", "--out", "OUT"],
         "unknown key 'hiden_size'"),
        (["prior", "evaluate", "--cache-dir", "CACHE"], "corpus build"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    args = [a.replace("OUT", str(tmp_path / "out")).replace("CACHE", str(tmp_path / "cache"))
            for a in args]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcomposer: error:"), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_corrupt_model_directory_is_named(tmp_path, tiny_prior_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_prior_dir, broken)
    (broken / "model.pt").write_bytes(b"\x00" * 10)
    result = run_cli("generate", "--model", str(broken), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "model.pt" in result.stderr and "corrupt" in result.stderr
    assert not (tmp_path / "out").exists()


def test_evaluate_prints_metrics_side_by_side(capsys):
    assert main(["evaluate", "--model", "prior", "--baseline", "random", "--n", "50"]) == 0
    out = capsys.readouterr().out
    assert "Notes not in key" in out and "prior" in out and "random" in out
    assert "Prior log-likelihood / step" in out
    assert main(["evaluate", "--model", "random", "--n", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["models"][0]["name"] == "random"
    assert 0 <= result["models"][0]["metrics"]["not_in_key"] <= 1


def test_evaluate_with_a_listener_gives_win_rates_against_the_baseline(capsys):
    assert main(["evaluate", "--model", "prior", "--baseline", "random", "--listener", "lyrical",
                 "--n", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    prior, random = result["models"]
    assert random["win_rate"] is None and prior["win_rate"] > 0.5  # the folk prior sings better than noise
    assert prior["listener_score"] > random["listener_score"]
    assert main(["evaluate", "--listener", "nowhere:nothing", "--n", "10"]) == 2
    assert "nowhere" in capsys.readouterr().err
