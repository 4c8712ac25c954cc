"""The README's examples work as written, and keep working.

* every ```python block runs (in a temporary folder, on temporary databases), after
  the README's own shell commands that make what it reads, and a value the
  README shows in a ``# comment`` beside an expression is the value it gives;
* every ``rlcomposer ...`` line of the ```sh blocks (and every one quoted in the
  prose or in a line's ``# comment``) names commands and options the parser has,
  parses as written, and its ``--config`` / ``--set`` give a valid config;
* a handful of those commands run for real, shrunk to tiny sizes (in-process,
  through :func:`rlcomposer.cli.main.main`);
* the ``module:function`` specs, module names, files, ``make`` targets and
  environment variables the README names exist, and ``rlcomposer/Melody-v0``
  plays with no arguments.

A README line that is wrong is listed in :data:`KNOWN_README_PROBLEMS`: its check
is still run and must still fail (the test then reports it as xfail). Once the
README is fixed, that check passes and the test fails until the entry is
removed; an entry whose line is no longer in the README fails too.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import re
import shlex
import shutil
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pytest

from rlcomposer.cli.main import build_parser, main

# (README line exactly as it is now, what is wrong with it and how to fix it)
KNOWN_README_PROBLEMS: list[tuple[str, str]] = []

REPO = Path(__file__).resolve().parents[1]
README_PATH = REPO / "README.md"
README = README_PATH.read_text(encoding="utf-8")
LINES = README.splitlines()
KNOWN = {text.strip(): reason for text, reason in KNOWN_README_PROBLEMS}
OTHER_PROGRAMS = {"make", "export", "tensorboard", "python", "pip", "alembic", "apt-get"}
REDIRECTS = {">", ">>", "2>", "<", "|", "&&", ";"}


# ------------------------------------------------------------ reading the README
class Block(NamedTuple):
    lang: str
    first_line: int  # README line number of the block's first line of code
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def code_blocks(lang: str | None = None) -> list[Block]:
    blocks, current, start, body = [], None, 0, []
    for number, line in enumerate(LINES, 1):
        if line.startswith("```"):
            if current is None:
                current, start, body = line[3:].strip() or "text", number + 1, []
            else:
                blocks.append(Block(current, start, body))
                current = None
        elif current is not None:
            body.append(line)
    return [b for b in blocks if lang is None or b.lang == lang]


def prose() -> list[tuple[int, str]]:
    """(line number, line) of the README outside code blocks."""
    inside, result = False, []
    for number, line in enumerate(LINES, 1):
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            result.append((number, line))
    return result


def prose_spans() -> list[tuple[int, str]]:
    """Every `backticked` span of the prose (a span may wrap onto the next line), with its line."""
    numbered = prose()
    text = "\n".join(line for _, line in numbered)
    starts = [0]
    for _, line in numbered:
        starts.append(starts[-1] + len(line) + 1)
    spans = []
    for match in re.finditer(r"`([^`]+)`", text):
        index = max(i for i, s in enumerate(starts) if s <= match.start())
        spans.append((numbered[index][0], " ".join(match.group(1).split())))
    return spans


def split_comment(line: str) -> tuple[str, str]:
    """``code # comment`` -> (code, comment), minding quotes."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:]
    return line, ""


class ShLine(NamedTuple):
    number: int
    text: str
    argv: list[str]  # the command as written, without comment and redirection
    comment: str


def sh_lines() -> list[ShLine]:
    result = []
    for block in code_blocks("sh"):
        for offset, line in enumerate(block.lines):
            code, comment = split_comment(line)
            argv = shlex.split(code)
            for i, token in enumerate(argv):
                if token in REDIRECTS:
                    argv = argv[:i]
                    break
            if argv:
                result.append(ShLine(block.first_line + offset, line, argv, comment))
    return result


RLCOMPOSER_LINES = [line for line in sh_lines() if line.argv[0] == "rlcomposer"]


def readme_argv(prefix: str) -> list[str]:
    """The README's sh command line that starts with ``prefix`` (its arguments after ``rlcomposer``)."""
    wanted = prefix.split()
    found = [line.argv for line in RLCOMPOSER_LINES if line.argv[:len(wanted)] == wanted]
    assert found, f"the README has no command line starting {prefix!r}; update tests/test_readme.py"
    return found[0][1:]


# ----------------------------------------------------------------- the parser
def leaf(argv: list[str]) -> tuple[list[str], argparse.ArgumentParser, list[str]]:
    """(command path, its parser, the rest) of ``argv`` (the arguments after ``rlcomposer``)."""
    parser, path, rest = build_parser(), [], list(argv)
    while True:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            return path, parser, rest
        if not rest or rest[0] not in groups[0].choices:
            raise LookupError(f"'rlcomposer {' '.join(path + rest[:1])}' is not a command "
                              f"(choices: {', '.join(groups[0].choices)})")
        parser = groups[0].choices[rest[0]]
        path.append(rest[0])
        rest = rest[1:]


def unknown_options(path: list[str], parser: argparse.ArgumentParser, args: Iterable[str]) -> list[str]:
    """The ``--options`` in ``args`` that the command does not have (exact names, no abbreviations)."""
    known = {flag for action in parser._actions for flag in action.option_strings}
    bad = []
    for arg in args:
        name = arg.split("=", 1)[0]
        if not name.startswith("--") or name in known:
            continue
        if path == ["app"] and re.fullmatch(r"--[A-Za-z]+(\.[A-Za-z]+)+", name):
            continue  # Streamlit's own options pass through `rlcomposer app`
        bad.append(name)
    return bad


def command_problem(argv: list[str], *, full: bool = True) -> str | None:
    """What is wrong with ``rlcomposer ARGV``: an unknown command or option, a parse error, a bad
    config (``full``); None when it is right. Without ``full``, only commands and options."""
    try:
        path, parser, rest = leaf(argv)
    except LookupError as error:
        return str(error)
    bad = unknown_options(path, parser, rest)
    if bad:
        return f"'rlcomposer {' '.join(path)}' has no option {', '.join(bad)}"
    if not full:
        return None
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    try:
        check_config(path, args)
    except Exception as error:  # noqa: BLE001 - any failure is the README's line failing
        return f"its config does not load: {type(error).__name__}: {error}"
    return None


def check_config(path: list[str], args: argparse.Namespace) -> None:
    """Load the config the command would build from ``--config`` and ``--set`` (as its handler does)."""
    from rlcomposer.config import load_config, parse_overrides

    command = " ".join(path)
    overrides = parse_overrides(getattr(args, "set", None))
    config = getattr(args, "config", None)
    config_path = REPO / config if config else None
    if command == "prior train":
        from rlcomposer.prior.training import PriorTrainingConfig

        load_config(PriorTrainingConfig, config_path, overrides)
    elif command == "tune":
        from rlcomposer.rl.tuning import TuneConfig

        for key in ("reward", "prior", "seed", "total_timesteps", "kl_beta", "kl_target", "algorithm"):
            if getattr(args, key, None) is not None:
                overrides[key] = getattr(args, key)
        load_config(TuneConfig, config_path, overrides)
    elif command == "reward train":
        from rlcomposer.preferences.reward_model import RewardModelConfig

        load_config(RewardModelConfig, config_path, overrides)
    elif command == "experiment run":
        from rlcomposer.experiments.loop import load_experiment_config

        load_experiment_config(config_path, overrides)


def comment_problems(line: ShLine) -> list[str]:
    """Commands quoted in the line's comment (`db downgrade --revision base`) and the options it
    lists for the line's own command (``# --cache-dir DIR, --force``)."""
    problems, comment = [], line.comment
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for span in re.findall(r"`([^`]+)`", comment):
        words = span.split()
        if words and words[0] == "rlcomposer":
            words = words[1:]
        if words and words[0] in top:
            problem = command_problem(words, full=False)
            if problem:
                problems.append(f"comment `{span}`: {problem}")
    rest = re.sub(r"`[^`]*`", "", comment)
    options = re.findall(r"(?<![\w-])--[A-Za-z][\w.-]*", rest)
    if options:
        path, parser, _ = leaf(bracketless(line.argv)[1:])
        bad = unknown_options(path, parser, options)
        if bad:
            problems.append(f"comment names {', '.join(bad)}, not options of 'rlcomposer {' '.join(path)}'")
    return problems


def bracketless(argv: list[str]) -> list[str]:
    """``[--rater X]`` (usage notation) -> ``--rater X``."""
    return [token.strip("[]") for token in argv if token.strip("[]")]


def adjust(argv: list[str], **options) -> list[str]:
    """``argv`` with options replaced: ``n=2`` (value), ``json=True`` (flag), ``tag=None`` (removed),
    ``model=["prior", "random"]`` (repeated)."""
    path, parser, _ = leaf(argv)
    flags = {flag for action in parser._actions if action.nargs == 0 for flag in action.option_strings}
    result = list(argv)
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        i = 0
        while i < len(result):
            if result[i] == flag:
                del result[i:i + (1 if flag in flags else 2)]
            else:
                i += 1
        for item in value if isinstance(value, list) else [value]:
            if item is True:
                result.append(flag)
            elif item is not None and item is not False:
                result += [flag, str(item)]
    return result


# ------------------------------------------------------------ known problems
def settle(found: dict[int, str], involved: Iterable[int]) -> None:
    """Fail on a problem the README should not have; xfail on known ones; fail when a known
    problem line now works (the README was fixed: empty its entry in KNOWN_README_PROBLEMS)."""
    unknown = {n: p for n, p in found.items() if LINES[n - 1].strip() not in KNOWN}
    assert not unknown, "\n".join(f"README.md:{n}: {LINES[n - 1].strip()!r}: {p}" for n, p in unknown.items())
    fixed = sorted({n for n in involved if LINES[n - 1].strip() in KNOWN and n not in found})
    assert not fixed, "\n".join(
        f"README.md:{n} works now: remove {LINES[n - 1].strip()!r} from KNOWN_README_PROBLEMS" for n in fixed)
    if found:
        pytest.xfail("; ".join(f"README.md:{n}: {KNOWN[LINES[n - 1].strip()]} (now: {p})"
                               for n, p in sorted(found.items())))


def test_every_known_problem_is_still_a_readme_line():
    stripped = {line.strip() for line in LINES}
    stale = [text for text, _ in KNOWN_README_PROBLEMS if text.strip() not in stripped]
    assert not stale, f"no longer in README.md, remove from KNOWN_README_PROBLEMS: {stale}"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The machine's cores are shared: two torch threads on a busy machine are many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working folder with the repository's configs, its own databases and caches."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", f"sqlite:///{tmp_path / 'ratings.sqlite3'}")
    monkeypatch.setenv("RLCOMPOSER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the working folder on it
    shutil.copytree(REPO / "experiments" / "configs", tmp_path / "experiments" / "configs")
    return tmp_path


@pytest.fixture
def cli(capsys):
    """``cli("generate", ...)`` runs the command in-process; its stdout (exit 0 asserted)."""
    def run(*argv: str) -> str:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert code == 0, f"rlcomposer {' '.join(argv)} exited with {code}: {err[-3000:]}"
        return out

    return run


# ------------------------------------------------------------ the python blocks
PYTHON_BLOCKS = code_blocks("python")


def python_block(containing: str) -> Block:
    found = [b for b in PYTHON_BLOCKS if containing in b.text]
    assert found, f"no python block of the README contains {containing!r}; update tests/test_readme.py"
    return found[0]


def shown_value(comment: str):
    """The value a ``# comment`` shows (``[(67, 0.75, 0.25), ...]``), or None when it shows none."""
    try:
        return ast.literal_eval(comment.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def matches_shown(value, shown) -> bool:
    if isinstance(shown, list | tuple) and shown and shown[-1] is Ellipsis:
        head = list(shown[:-1])
        return list(value[:len(head)]) == head
    return value == shown


def run_python_block(block: Block) -> tuple[dict, dict[int, str]]:
    """Run ``block`` statement by statement: (its namespace, {README line: what failed there})."""
    tree = ast.parse(block.text)
    ast.increment_lineno(tree, block.first_line - 1)
    namespace: dict = {"__name__": "__readme__"}
    found: dict[int, str] = {}
    for statement in tree.body:
        number = statement.lineno
        code = compile(ast.Module([statement], type_ignores=[]), str(README_PATH), "exec")
        try:
            if isinstance(statement, ast.Expr):
                value = eval(compile(ast.Expression(statement.value), str(README_PATH), "eval"), namespace)
                shown = shown_value(split_comment(LINES[statement.end_lineno - 1])[1])
                if shown is not None and not matches_shown(value, shown):
                    found[statement.end_lineno] = f"gives {value!r}"
            else:
                exec(code, namespace)
        except Exception as error:  # noqa: BLE001 - the README line fails
            lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == str(README_PATH)]
            found[lines[-1] if lines else number] = f"{type(error).__name__}: {error}"
            break
    return namespace, found


def readme_setup(block: Block, cli) -> None:
    """Run what the README's sh blocks do to make the files and databases ``block`` reads."""
    for folder in dict.fromkeys(Path(path).parent.as_posix()  # each folder once: generate refuses a full one
                                for path in re.findall(r"\"([\w./-]+\.json)\"", block.text)):
        argv = next((line.argv[1:] for line in RLCOMPOSER_LINES
                     if line.argv[1:2] == ["generate"] and "--out" in line.argv
                     and line.argv[line.argv.index("--out") + 1] == folder), None)
        assert argv, f"no README command writes into {folder}"
        cli(*adjust(argv, format="json", quiet=True))  # the README's command, writing JSON only
    for url in re.findall(r"\"(sqlite:///[\w./-]+)\"", block.text):
        for line in RLCOMPOSER_LINES:  # the README's commands that fill that database
            if line.argv[1:3] == ["pool", "add"] and url in line.argv:
                cli(*adjust(line.argv[1:], n=12, quiet=True))


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"README.md:{b.first_line}" for b in PYTHON_BLOCKS])
def test_python_block_runs_as_written(block, workdir, cli):
    readme_setup(block, cli)
    _, found = run_python_block(block)
    settle(found, range(block.first_line, block.first_line + len(block.lines)))


def test_melody_block_writes_files_that_load_back(workdir, cli):
    block = python_block("Melody.load")
    readme_setup(block, cli)
    namespace, found = run_python_block(block)
    assert all(LINES[n - 1].strip() in KNOWN for n in found), found  # only known problems
    melody, cls = namespace["m"], namespace["Melody"]
    assert melody.notes() and all(len(note) == 3 for note in melody.notes())
    for name in ("tune.mid", "tune.musicxml"):
        assert cls.load(name) == melody, f"{name} does not convert losslessly"
    assert Path("tune.wav").stat().st_size > 1000


def test_feedback_block_stores_one_comparison_by_ann(workdir, cli):
    """The block fills its own pool (from the files `generate` wrote) and stores Ann's answer."""
    block = python_block("open_store")
    readme_setup(block, cli)
    namespace, found = run_python_block(block)
    assert not found, found
    rows = namespace["store"].export_rows()
    assert [(r["kind"], r["rater"], r["choice"]) for r in rows] == [("comparison", "Ann", "a")]


# ---------------------------------------------------------- the sh command lines
@pytest.mark.parametrize("line", RLCOMPOSER_LINES, ids=[f"README.md:{line.number}" for line in RLCOMPOSER_LINES])
def test_sh_command_line_matches_the_parser(line):
    found = {}
    problems = [p for p in (command_problem(line.argv[1:]),) if p] + comment_problems(line)
    if bracketless(line.argv) != line.argv:  # the line as it should be, without usage brackets
        corrected = command_problem(bracketless(line.argv)[1:])
        assert corrected is None, f"README.md:{line.number}: even without brackets: {corrected}"
    if problems:
        found[line.number] = "; ".join(problems)
    settle(found, [line.number])


def test_sh_blocks_hold_only_known_programs():
    programs = {line.argv[0] for line in sh_lines()}
    assert programs <= OTHER_PROGRAMS | {"rlcomposer"}, programs
    assert len(RLCOMPOSER_LINES) >= 25


PROSE_COMMANDS = [(n, span) for n, span in prose_spans() if span.startswith("rlcomposer ")]


@pytest.mark.parametrize("number,span", PROSE_COMMANDS, ids=[f"README.md:{n}" for n, _ in PROSE_COMMANDS])
def test_prose_command_matches_the_parser(number, span):
    problem = command_problem(shlex.split(span)[1:], full=False)
    settle({number: problem} if problem else {}, [number])


def test_set_keys_named_in_the_prose_are_config_keys():
    import dataclasses

    from rlcomposer.experiments.loop import ExperimentConfig
    from rlcomposer.preferences.reward_model import RewardModelConfig
    from rlcomposer.prior.training import PriorTrainingConfig
    from rlcomposer.rl.tuning import TuneConfig

    keys = {f.name for cls in (PriorTrainingConfig, TuneConfig, RewardModelConfig, ExperimentConfig)
            for f in dataclasses.fields(cls)}
    named = [(n, m.group(1)) for n, span in prose_spans() for m in re.finditer(r"--set (\w+)=", span)]
    assert named, "the README names no --set KEY=VALUE in its prose any more"
    assert [(n, key) for n, key in named if key not in keys] == []


# ------------------------------------------------------------ commands for real
def test_generate_same_seed_gives_identical_json_and_one_file_per_format(workdir, cli):
    argv = readme_argv("rlcomposer generate --model prior --n 10 --seed 1")
    for out in ("a", "b"):
        cli(*adjust(argv, n=2, out=out, format="json", quiet=True))
    first, second = sorted(Path("a").iterdir()), sorted(Path("b").iterdir())
    assert [p.name for p in first] == ["melody-000.json", "melody-001.json"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    cli(*adjust(argv, n=1, out="all", quiet=True))  # the README's formats: midi,musicxml,wav,json
    assert sorted(p.name for p in Path("all").iterdir()) == [
        "melody-000.json", "melody-000.mid", "melody-000.musicxml", "melody-000.wav"]


def test_generate_from_a_model_directory(workdir, cli, tiny_prior_dir):
    from rlcomposer.music.melody import Melody

    argv = readme_argv("rlcomposer generate --model runs/prior")
    cli(*adjust(argv, model=str(tiny_prior_dir), format="json", quiet=True))
    melodies = [Melody.load(p) for p in sorted(Path("melodies").glob("*.json"))]
    assert len(melodies) == int(argv[argv.index("--n") + 1])
    assert {m.num_steps for m in melodies} == {16 * int(argv[argv.index("--bars") + 1])}


def test_evaluate_prints_json(workdir, cli):
    argv = readme_argv("rlcomposer evaluate --model corpus --model prior --model random")
    result = json.loads(cli(*adjust(argv, model=["prior", "random"], n=50, json=True, quiet=True)))
    assert [m["name"] for m in result["models"]] == ["prior", "random"]
    assert all(m["metrics"]["num_melodies"] == 50 for m in result["models"])


def test_best_of_n_with_the_module_reward_spec(workdir, cli):
    argv = readme_argv("rlcomposer evaluate --model runs/theory --baseline prior --reward")
    assert "rlcomposer.music.theory:theory_reward" in argv
    result = json.loads(cli(*adjust(argv, model=None, baseline=None, best_of=4, n=20, json=True, quiet=True)))
    rewards = {m["name"]: m["mean_reward"] for m in result["models"]}
    assert list(rewards) == ["prior", "best-of-4(prior)"], rewards  # the default model, then best-of-N
    assert rewards["best-of-4(prior)"] > rewards["prior"], rewards  # picking by the reward raises it
    argv = readme_argv("rlcomposer generate --model prior --best-of 16")
    cli(*adjust(argv, best_of=4, n=2, format="json", quiet=True))
    assert len(list(Path(argv[argv.index("--out") + 1]).glob("*.json"))) == 2


def test_database_commands(workdir, cli, monkeypatch):
    where = json.loads(cli(*readme_argv("rlcomposer db where"), "--json"))
    assert where["path"] == str(workdir / "ratings.sqlite3")  # $RLCOMPOSER_DATABASE_URL
    other = json.loads(cli(*readme_argv("rlcomposer db where"), "--db", "sqlite:///other.sqlite3", "--json"))
    assert Path(other["path"]).name == "other.sqlite3"  # --db wins over the environment
    monkeypatch.delenv("RLCOMPOSER_DATABASE_URL")
    default = json.loads(cli(*readme_argv("rlcomposer db where"), "--json"))
    assert Path(default["path"]) == workdir / "data" / "rlcomposer" / "feedback.sqlite3"
    monkeypatch.setenv("RLCOMPOSER_DATABASE_URL", f"sqlite:///{workdir / 'ratings.sqlite3'}")
    cli(*readme_argv("rlcomposer db upgrade"), "--quiet")
    current = json.loads(cli(*readme_argv("rlcomposer db current"), "--json"))
    assert current["current"] == current["head"] is not None
    cli("db", "downgrade", "--revision", "base", "--quiet")  # the README: `db downgrade --revision base`
    assert json.loads(cli("db", "current", "--json"))["current"] is None


def test_pool_simulated_ratings_and_export(workdir, cli):
    pool = adjust(readme_argv("rlcomposer pool add --model prior --n 1000"), n=12, json=True, quiet=True)
    assert json.loads(cli(*pool))["added"] == 12
    again = json.loads(cli(*pool))  # a melody already in the tag is not added twice
    assert (again["added"], again["already_there"]) == (0, 12)
    cli(*adjust(readme_argv("rlcomposer ratings simulate --listener lyrical --pairs 300"),
                pairs=20, stars=5, quiet=True))
    cli(*readme_argv("rlcomposer ratings export --out ratings.csv"))
    assert len(Path("ratings.csv").read_text().splitlines()) == 1 + 25
    rows = [json.loads(line) for line in cli(*adjust(
        readme_argv("rlcomposer ratings export --format jsonl"), tag="round0", rater="sim:lyrical")).splitlines()]
    assert len(rows) == 25 and {r["rater"] for r in rows} == {"sim:lyrical"}


def test_reward_model_tuning_resume_and_the_run_folder(workdir, cli):
    """The README's listener -> reward model -> PPO lines, then resuming and the tuned policy as a model."""
    tiny_tune = dict(total_timesteps=256, set=["n_envs=4", "threads=1", "checkpoint_every=128"], quiet=True)
    cli(*adjust(readme_argv("rlcomposer pool add --model prior --n 1000"), n=12, quiet=True))
    cli(*adjust(readme_argv("rlcomposer ratings simulate --listener lyrical --pairs 300"),
                pairs=30, stars=5, quiet=True))
    cli(*adjust(bracketless(readme_argv("rlcomposer reward train")),
                set=["epochs=5", "reference_melodies=16"], quiet=True))
    cli(*adjust(readme_argv("rlcomposer ratings simulate --listener lyrical --pairs 100"), pairs=5, quiet=True))
    cli(*adjust(readme_argv("rlcomposer tune --reward runs/rm"), **tiny_tune))
    run = Path("runs/tuned")  # the run folder the README describes
    for name in ("model.pt", "config.json", "metrics.json", "history.jsonl", "plots/reward.png", "plots/kl.png"):
        assert (run / name).is_file(), name
    assert (run / "tb").is_dir() and sorted(p.name for p in (run / "checkpoints").glob("ppo_*_steps.zip")) == [
        "ppo_128_steps.zip", "ppo_256_steps.zip"]
    cli(*adjust(readme_argv("rlcomposer tune --config experiments/configs/theory.yaml --out runs/theory --resume"),
                out="runs/tuned", reward="runs/rm", resume="runs/tuned/checkpoints/ppo_128_steps.zip",
                **tiny_tune))
    cli(*adjust(readme_argv("rlcomposer evaluate --model runs/quickstart/round-0/policy"),
                model="runs/tuned", n=10, quiet=True))
    cli(*adjust(readme_argv("rlcomposer pool add --model runs/tuned"), n=4, quiet=True))
    cli(*adjust(readme_argv("rlcomposer generate --model runs/theory"), model="runs/tuned", n=2,
                format="json", quiet=True))


@pytest.mark.slow
def test_experiment_run_and_resume(workdir, cli):
    tiny = ["pool_size=12", "comparisons_per_round=30", "evaluation_pairs=16", "export_melodies=2",
            "tune={total_timesteps: 256, n_envs: 4, threads: 1}", "reward_model={epochs: 5, reference_melodies: 16}"]
    argv = readme_argv("rlcomposer experiment run experiments/configs/quickstart.yaml")
    out = cli(*adjust(argv, set=tiny, quiet=True))
    assert "rlcomposer app --db" in out and Path("runs/quickstart/report.md").is_file()
    assert sorted(Path("runs/quickstart/round-0/melodies").glob("*.mid"))
    people = readme_argv("rlcomposer experiment run experiments/configs/quickstart.yaml --set listener=people")
    people_sets = [people[i + 1] for i, token in enumerate(people) if token == "--set"]
    cli(*adjust(people, set=tiny + people_sets, quiet=True))
    assert "experiment resume runs/mine" in cli(*readme_argv("rlcomposer experiment resume runs/mine"))


def test_bad_input_exits_2_with_one_line(workdir, capsys):
    assert main(["generate", "--model", "no-such-model", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlcomposer: error: ") and len(err.strip().splitlines()) == 1


# -------------------------------------------------------- names the README uses
def test_module_function_specs_resolve():
    from rlcomposer.music.melody import Melody
    from rlcomposer.preferences.reward_functions import load_callable

    specs = sorted({m.group(0) for m in re.finditer(r"\brlcomposer(?:\.\w+)+:\w+(?:\.\w+)*", README)})
    assert "rlcomposer.music.theory:theory_reward" in specs
    melody = Melody.from_notes([(60 + 2 * (i % 4), i * 1.0, 1.0) for i in range(16)])
    for spec in specs:
        assert isinstance(float(load_callable(spec)(melody)), float), spec


def test_gymnasium_make_with_no_arguments():
    import gymnasium

    import rlcomposer  # noqa: F401 - registers the environment

    env = gymnasium.make("rlcomposer/Melody-v0")
    try:
        observation, _ = env.reset(seed=0)
        assert observation.shape == (64,)  # 4 bars of 16 steps
        env.action_space.seed(0)
        steps, terminated, truncated, info = 0, False, False, {}
        while not (terminated or truncated):
            observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert isinstance(float(reward), float)
            steps += 1
        assert (steps, terminated, truncated) == (64, True, False)
        assert any(term.startswith("theory_") for term in info["reward_terms"])  # RL Tuner's reward
    finally:
        env.close()


def resolve(name: str):
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(name)


def test_named_modules_and_functions_exist():
    import inspect

    import rlcomposer  # noqa: F401 - installs the old flat module names

    spans = [span for _, span in prose_spans()]
    dotted = sorted({s.split("(")[0] for s in spans if re.fullmatch(r"rlcomposer(\.\w+)+(\(\))?", s)})
    assert {"rlcomposer.music.melody", "rlcomposer.rl.environment", "rlcomposer.music.theory"} <= set(dotted)
    missing = []
    for name in dotted:
        try:
            resolve(name)
        except (ImportError, AttributeError) as error:
            missing.append(f"{name}: {error}")
    assert not missing
    assert "MelodyVecEnv" in spans and resolve("rlcomposer.rl.environment.MelodyVecEnv")
    signature = next(s for s in spans if s.startswith("load_reward_model("))
    assert "expected_prior" in signature
    assert "expected_prior" in inspect.signature(resolve("rlcomposer.preferences.reward_model.load_reward_model")).parameters


def test_melody_methods_named_in_the_melodies_section_exist():
    import rlcomposer.music.melody as melody_module

    section = README.split("## Melodies", 1)[1].split("```", 1)[0]
    names = {re.sub(r"^(Melody|melody)\.|\(\)$", "", s) for s in re.findall(r"`([\w.()]+)`", section)}
    names = {n for n in names if re.fullmatch(r"\w+", n)}
    assert {"notes", "from_notes", "to_midi_bytes", "save", "load", "HOLD", "REST"} <= names
    assert [n for n in names if not hasattr(melody_module.Melody, n) and not hasattr(melody_module, n)] == []


def test_files_make_targets_and_environment_variables_exist():
    # repository paths: a folder (ending in /) or a file (with a suffix); not rlcomposer/Melody-v0
    path_pattern = r"(docs|experiments|alembic|requirements|feedback_app|rlcomposer)/([\w.-]+/)*([\w-]+\.\w+)?|[\w-]+\.ini"
    words = [w for _, span in prose_spans() for w in span.split()]
    words += [w for line in sh_lines() for w in line.argv]
    paths = sorted({w for w in words if re.fullmatch(path_pattern, w)})
    assert "experiments/configs/quickstart.yaml" in paths and "docs/architecture.md" in paths
    assert [p for p in paths if not (REPO / p).exists()] == []
    layout = next(b for b in code_blocks() if b.lang == "text" and "rlcomposer/" in b.text)
    for line in layout.lines:
        folder, _, description = line.partition(" ")
        assert (REPO / folder).exists(), folder
        if folder.endswith("/"):
            for name in re.findall(r"\b[\w]+\.(?:py|txt|md|ini)\b", description):
                assert (REPO / folder / name).exists() or (REPO / name).exists(), (folder, name)
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    named = {m for m in re.findall(r"`make ([\w-]+)`", README)}
    named |= {line.argv[1] for line in sh_lines() if line.argv[0] == "make"}
    assert named and named <= targets, named - targets
    sources = "\n".join(p.read_text(encoding="utf-8") for folder in ("rlcomposer", "feedback_app", "tests")
                        for p in (REPO / folder).rglob("*.py") if p.name != "test_readme.py")
    variables = set(re.findall(r"RLCOMPOSER_[A-Z_]+", README))
    assert variables and [v for v in sorted(variables) if v not in sources] == []
