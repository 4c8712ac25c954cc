"""The command line: the commands and their options, results, --json, and errors with exit 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from rlcomposer.checkpoints import read_model_dir
from rlcomposer.cli import main
from rlcomposer.cli.main import build_parser
from rlcomposer.prior.registry import resolve_model

COMMANDS = ["corpus", "prior", "generate", "evaluate", "continue", "tune", "experiment", "db", "pool", "ratings",
            "reward", "app", "study", "sweep"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlcomposer.cli", *args],
                          capture_output=True, text=True, timeout=300)


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every runnable command, e.g. (('ratings', 'simulate'), parser)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from leaf_parsers(sub, (*path, name))


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


# ------------------------------------------------------------------ the parser
def test_help_lists_every_command_in_order():
    result = run_cli("--help")  # also: `python -m rlcomposer.cli` runs the CLI
    assert result.returncode == 0 and result.stderr == ""
    listing = result.stdout.split("\n  COMMAND\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split()[0] for line in listing.splitlines() if not line.startswith(" " * 6)] == COMMANDS
    generate_help = dict(leaf_parsers(build_parser()))[("generate",)].format_help()
    assert "--seed SEED" in generate_help and "byte-identical" in generate_help


def test_every_command_has_a_handler_and_a_help_text():
    parser = build_parser()
    commands = {" ".join(path): sub for path, sub in leaf_parsers(parser)}
    assert sorted(commands) == sorted([
        "corpus build", "prior train", "prior evaluate", "generate", "evaluate", "continue", "tune", "experiment run",
        "experiment resume", "db where", "db upgrade", "db downgrade", "db current", "pool add",
        "ratings export", "ratings simulate", "ratings forget", "reward train", "app", "study create", "study list",
        "study close", "study link", "study personalise", "sweep run", "sweep resume", "sweep report"])
    for name, sub in commands.items():
        assert callable(sub.get_default("handler")), name
        assert sub.format_help().startswith(f"usage: rlcomposer {name} "), name


def test_shared_options_are_the_same_on_every_command():
    """--json/--quiet, --db and the corpus options: which commands take them, with one meaning each."""
    commands = {" ".join(path): sub for path, sub in leaf_parsers(build_parser())}
    output = {name for name, sub in commands.items() if option(sub, "--json") and option(sub, "--quiet")}
    assert output == set(commands) - {"app"}
    corpus = {name for name, sub in commands.items() if option(sub, "--cache-dir") and option(sub, "--max-tunes")}
    assert corpus == {"corpus build", "prior train", "prior evaluate", "generate", "evaluate", "pool add"}
    database = {name for name, sub in commands.items() if option(sub, "--db") is not None
                and option(sub, "--db").metavar == "URL"}
    assert database == {"db where", "db upgrade", "db downgrade", "db current", "pool add", "ratings export",
                        "ratings simulate", "ratings forget", "reward train", "tune", "app", "study create", "study list",
                        "study close", "study link", "study personalise"}
    for name in output:
        assert option(commands[name], "--json").help == "print the result as JSON on stdout", name
    max_tunes = option(commands["generate"], "--max-tunes")
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
        max_tunes.type("0")
    # experiment run/resume keep ratings in the run's own database unless --db is given
    assert option(commands["experiment run"], "--db").default is None
    assert "the run's own SQLite file" in option(commands["experiment run"], "--db").help


def test_building_the_parser_imports_nothing_heavy():
    """`rlcomposer --help` stays fast: torch, music21, SB3, SQLAlchemy load inside the handlers."""
    code = ("import sys, json\n"
            "from rlcomposer.cli.main import build_parser\n"
            "import argparse\n"
            "def walk(p):\n"
            "    p.format_help()\n"
            "    for a in p._actions:\n"
            "        if isinstance(a, argparse._SubParsersAction):\n"
            "            for sub in a.choices.values(): walk(sub)\n"
            "walk(build_parser())\n"
            "heavy = ['torch', 'music21', 'stable_baselines3', 'sqlalchemy', 'streamlit', 'matplotlib',\n"
            "         'rlcomposer.rl.tuning', 'rlcomposer.prior.model']\n"
            "print(json.dumps([m for m in heavy if m in sys.modules]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_tune_algorithm_choices_are_the_tuning_modules(capsys):
    from rlcomposer import rl
    from rlcomposer.rl import tuning

    assert tuning.ALGORITHMS is rl.ALGORITHMS and "dpo" in rl.ALGORITHMS  # one definition
    tune_parser = dict(leaf_parsers(build_parser()))[("tune",)]
    assert tuple(option(tune_parser, "--algorithm").choices) == rl.ALGORITHMS
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["tune", "--algorithm", "nope", "--out", "x"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("rlcomposer tune: error: argument --algorithm: invalid choice: 'nope'")
    assert all(repr(name) in error for name in rl.ALGORITHMS)


def test_tune_dpo_on_the_comparisons_in_the_database(tmp_path, tiny_prior_dir, capsys):
    db = f"sqlite:///{tmp_path / 'ratings.sqlite3'}"
    assert main(["pool", "add", "--model", str(tiny_prior_dir), "--n", "30", "--bars", "1", "--tag", "t",
                 "--db", db, "--json"]) == 0
    assert main(["ratings", "simulate", "--listener", "lyrical", "--pairs", "40", "--tag", "t", "--db", db,
                 "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "dpo"
    assert main(["tune", "--algorithm", "dpo", "--db", db, "--tag", "t", "--prior", str(tiny_prior_dir),
                 "--set", "num_bars=1", "--set", "dpo_epochs=3", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["comparisons"] == 40 - result.get("skipped", 0) and result["kl_per_melody"] >= 0
    files = read_model_dir(out)
    assert files.kind == "policy" and files.config["training"]["algorithm"] == "dpo"
    assert files.config["training"]["dpo"]["epochs"] == 3
    assert len(resolve_model(str(out)).sample(2, 16, np.random.default_rng(0))) == 2
    # comparisons of another length than the run's: one line, before any training
    assert main(["tune", "--algorithm", "dpo", "--db", db, "--tag", "t", "--prior", str(tiny_prior_dir),
                 "--set", "num_bars=2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "16 steps; this run's melodies have 32" in err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ generate
def test_generate_same_seed_same_bytes_and_another_seed_other_melodies(tmp_path, tiny_prior_dir, capsys):
    results = {}
    for out, seed in (("a", "4"), ("b", "4"), ("c", "5")):
        assert main(["generate", "--model", str(tiny_prior_dir), "--n", "3", "--seed", seed,
                     "--out", str(tmp_path / out), "--format", "json,midi", "--json"]) == 0
        results[out] = json.loads(capsys.readouterr().out)
    names = [f"melody-{i:03d}{suffix}" for i in range(3) for suffix in (".json", ".mid")]
    assert results["a"] == {"out": str(tmp_path / "a"), "model": str(tiny_prior_dir), "seed": 4, "melodies": 3,
                            "metre": "4/4", "key": "C major", "bars": 4,
                            "files": [str(tmp_path / "a" / name) for name in names]}
    for out in "abc":
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert [(tmp_path / "a" / n).read_bytes() for n in names] != [(tmp_path / "c" / n).read_bytes() for n in names]
    assert main(["generate", "--model", str(tiny_prior_dir), "--n", "1", "--out", str(tmp_path / "d"),
                 "--format", "json", "--quiet"]) == 0
    assert capsys.readouterr().out == f"wrote 1 melodies of 4 bars of 4/4 in C major (1 files) to {tmp_path / 'd'}\n"


def test_generate_from_the_shipped_prior_in_every_format_by_default(tmp_path, capsys):
    assert main(["generate", "--n", "1", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "prior" and result["seed"] == 0 and result["melodies"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "melody-000.json", "melody-000.mid", "melody-000.musicxml", "melody-000.wav"]
    assert sorted(result["files"]) == sorted(str(p) for p in tmp_path.iterdir())
    melody = json.loads((tmp_path / "melody-000.json").read_text())
    assert melody["num_steps"] == len(melody["tokens"]) == 4 * 16  # --bars 4 by default
    assert (melody["metadata"]["model"], melody["metadata"]["seed"], melody["metadata"]["index"]) == ("prior", 0, 0)


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--n", "0", "--out", "OUT"], "--n must be from 1 to 100000, got 0"),
        (["generate", "--seed", "-3", "--out", "OUT"], "--seed must be from 0 to 4294967295, got -3"),
        (["generate", "--bars", "0", "--out", "OUT"], "--bars must be from 1 to 32, got 0"),
        (["generate", "--model", "nosuchmodel", "--out", "OUT"], "unknown model 'nosuchmodel'"),
        (["generate", "--format", "mp3", "--out", "OUT"], "unknown format 'mp3'"),
        (["generate", "--model", "random", "--best-of", "3", "--out", "OUT"], "--best-of needs --reward"),
        (["generate", "--model", "random", "--reward", "x:y", "--out", "OUT"], "--reward is used with --best-of"),
        (["prior", "train", "--set", "hiden_size=3", "--cache-dir", "CACHE", "--out", "OUT"],
         "unknown key 'hiden_size'"),
        (["prior", "evaluate", "--cache-dir", "CACHE"], "run `rlcomposer corpus build` first"),
        (["evaluate", "--n", "0"], "--n must be from 1 to 100000, got 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    args = [a.replace("OUT", str(tmp_path / "out")).replace("CACHE", str(tmp_path / "cache")) for a in args]
    assert main(args) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcomposer: error:"), err
    assert message in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--max-tunes", "0", "--out", "OUT"], "argument --max-tunes: must be at least 1, got 0"),
        (["evaluate", "--seed", "x"], "argument --seed: expected a whole number, got 'x'"),
        (["generate", "--n", "2"], "the following arguments are required: --out"),
        (["pool", "add", "--n", "0", "--tag", "t"], "argument --n: must be at least 1, got 0"),
        (["ratings", "export", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["tune", "--total-timesteps", "0", "--out", "OUT"], "argument --total-timesteps: must be at least 1"),
        (["experiment", "run"], "the following arguments are required: config"),
    ],
)
def test_a_bad_option_is_exit_2_naming_the_option(tmp_path, capsys, args, message):
    command = " ".join(a for a in args[:2] if not a.startswith("-"))
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert err.startswith(f"usage: rlcomposer {command} ")
    assert err.strip().splitlines()[-1].startswith(f"rlcomposer {command}: error: {message}")
    assert not (tmp_path / "out").exists()


def test_corrupt_model_directory_is_named(tmp_path, tiny_prior_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_prior_dir, broken)
    (broken / "model.pt").write_bytes(b"\x00" * 10)
    result = run_cli("generate", "--model", str(broken), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rlcomposer: error: {broken / 'model.pt'}: corrupt")
    assert not (tmp_path / "out").exists()


def test_corpus_cache_is_cache_dir_else_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLCOMPOSER_CACHE_DIR", str(tmp_path / "from-env"))
    assert main(["prior", "evaluate"]) == 2
    assert f"in {tmp_path / 'from-env'};" in capsys.readouterr().err
    assert main(["prior", "evaluate", "--cache-dir", str(tmp_path / "flag")]) == 2
    err = capsys.readouterr().err
    assert f"in {tmp_path / 'flag'};" in err and "from-env" not in err


# ------------------------------------------------------------------ evaluate
def test_evaluate_prints_metrics_side_by_side(capsys):
    assert main(["evaluate", "--model", "prior", "--baseline", "random", "--n", "50"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "prior" in line and "random" in line)
    assert header.index("prior") < header.index("random")  # --model first, --baseline after
    assert "Notes not in key" in out and "Prior log-likelihood / step" in out


def test_evaluate_json_follows_the_options_and_the_seed(capsys):
    def evaluate(*extra):
        assert main(["evaluate", "--model", "random", "--n", "20", "--json", *extra]) == 0
        captured = capsys.readouterr()
        assert "sampling 20 melodies of " in captured.err  # notes go to stderr under --json
        return json.loads(captured.out)

    first, again, other_seed, short = evaluate(), evaluate(), evaluate("--seed", "1"), evaluate("--bars", "2")
    assert {k: first[k] for k in ("num_melodies", "num_steps", "seed")} == {
        "num_melodies": 20, "num_steps": 64, "seed": 0}
    assert [m["name"] for m in first["models"]] == ["random"]
    metrics = first["models"][0]["metrics"]
    assert (metrics["num_melodies"], metrics["num_steps"]) == (20, 20 * 64)
    assert again["models"][0]["metrics"] == metrics  # the same seed, the same melodies
    assert other_seed["seed"] == 1 and other_seed["models"][0]["metrics"] != metrics
    assert short["num_steps"] == 32 and short["models"][0]["metrics"]["num_steps"] == 20 * 32


def test_evaluate_with_a_listener_gives_win_rates_against_the_baseline(capsys):
    assert main(["evaluate", "--model", "prior", "--baseline", "random", "--listener", "lyrical",
                 "--n", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    prior, random = result["models"]
    assert (prior["name"], random["name"]) == ("prior", "random")
    assert random["win_rate"] is None and prior["win_rate"] > 0.5  # the folk prior sings better than noise
    assert prior["listener_score"] > random["listener_score"]
    assert main(["evaluate", "--listener", "nowhere:nothing", "--n", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlcomposer: error:") and "nowhere" in err[0]
