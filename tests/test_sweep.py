"""Sweeps on Ray Tune: sweep files, bad input, the report's statistics; sweeps run on a local Ray,
interrupted and resumed, and on a separately started head node (those are ``slow``)."""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlcomposer.cli import main
from rlcomposer.sweep.report import build_report, student_t_quantile, write_sweep_report
from rlcomposer.sweep.runner import SWEEP_FORMAT
from rlcomposer.sweep.spec import SweepError, load_sweep

ROOT = Path(__file__).resolve().parent.parent
# 2 bars, not 1: told the length, the prior makes a 1-bar melody mostly silent (a pick-up bar)
TINY = dict(name="tiny", listener="lyrical", pool_size=32, comparisons_per_round=48, evaluation_pairs=16,
            export_melodies=1, best_of_n_cap=8, best_of_n_budget=128,
            reward_model={"epochs": 5, "min_comparisons": 10, "ensemble_size": 3, "cv_folds": 0,
                          "reference_melodies": 64},
            tune={"num_bars": 2, "n_envs": 8, "minibatch_episodes": 4, "total_timesteps": 256,
                  "checkpoint_every": 0})


def write_sweep(folder: Path, **sweep) -> Path:
    """A base experiment (the tiny loop) and a sweep file over it, in ``folder``."""
    (folder / "base.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"experiment": "base.yaml", **sweep}, sort_keys=False), encoding="utf-8")
    return path


# ---- the sweep file -------------------------------------------------------
def test_grid_and_random_keys_expand_into_checked_trials(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, grid={"tune.kl_target": [1.5, 3], "seed": [0, 1, 2]},
                                  random={"strategy": ["random", "active"]}, samples=2, sampler_seed=7,
                                  set={"evaluation_pairs": 20}, cpus_per_trial=2))
    trials = spec.trials()
    assert len(trials) == 2 * 3 * 2
    assert len({t.name for t in trials}) == len(trials)
    first = trials[0]
    assert first.params["tune.kl_target"] == 1.5 and first.params["seed"] == 0
    assert first.config["tune"]["kl_target"] == 1.5 and first.config["seed"] == 0
    assert first.config["evaluation_pairs"] == 20  # `set` reaches every trial
    assert first.config["tune"]["total_timesteps"] == 256  # the base config's tune keys stay
    assert all(t.config["tune"]["threads"] == 2 for t in trials)  # torch threads = the CPU budget
    assert first.name == "000-kl_target=1.5,seed=0,strategy=" + first.params["strategy"]
    # random choices come from the sampler's seed: the same file gives the same trials
    again = load_sweep(tmp_path / "sweep.yaml").trials()
    assert [t.params for t in again] == [t.params for t in trials]
    assert {t.params["strategy"] for t in trials} == {"random", "active"}


def test_the_sweep_may_set_tune_threads_itself(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, grid={"seed": [0]}, set={"tune.threads": 1}, cpus_per_trial=2))
    assert spec.trials()[0].config["tune"]["threads"] == 1


@pytest.mark.parametrize("sweep, message", [
    ({"grid": {"seed": [0]}, "repeat": 2}, "unknown key 'repeat'"),
    ({}, "search space is empty"),
    ({"grid": {}}, "search space is empty"),
    ({"grid": {"seed": []}}, "non-empty list"),
    ({"grid": {"sede": [0, 1]}}, "unknown key 'sede'"),
    ({"grid": {"tune.kl_targt": [1, 3]}}, "unknown key 'kl_targt'"),
    ({"grid": {"noise.temperature": [1]}}, "may be dotted"),
    ({"grid": {"pool_size": [0]}}, "pool_size"),
    ({"grid": {"listener": ["lyrical", "nowhere:nothing"]}}, "nowhere"),
    ({"grid": {"listener": ["people"]}}, "cannot be swept"),
    ({"grid": {"seed": [0]}, "cpus_per_trial": 0}, "cpus_per_trial"),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, sweep, message):
    path = write_sweep(tmp_path, **sweep)
    with pytest.raises(SweepError, match=message) as caught:
        load_sweep(path)
    assert "\n" not in str(caught.value)


def test_the_cli_refuses_bad_input_in_one_line_before_any_trial(tmp_path, capsys):
    bad = write_sweep(tmp_path, grid={"tune.bogus": [1, 2]})
    assert main(["sweep", "run", str(bad), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("rlcomposer: error:") and "bogus" in error and "\n" not in error
    assert not (tmp_path / "out").exists()  # nothing was started or written

    (tmp_path / "not-a-sweep").mkdir()
    assert main(["sweep", "resume", str(tmp_path / "not-a-sweep")]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err
    assert main(["sweep", "report", str(tmp_path / "not-a-sweep")]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err


def test_an_unreachable_address_is_one_line_before_any_trial(tmp_path, capsys):
    pytest.importorskip("ray")
    good = write_sweep(tmp_path, grid={"seed": [0, 1]})
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    assert main(["sweep", "run", str(good), "--out", str(tmp_path / "out"),
                 "--address", f"127.0.0.1:{port}"]) == 2
    error = capsys.readouterr().err.strip()
    assert "no Ray cluster answers" in error and "\n" not in error
    assert time.monotonic() - started < 30 and not (tmp_path / "out").exists()


def test_without_ray_sweep_names_the_extra_and_the_rest_never_imports_ray(tmp_path):
    sweep = write_sweep(tmp_path, grid={"seed": [0]})
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "import rlcomposer, rlcomposer.cli.main\n"
            "from rlcomposer.cli import main\n"
            f"code = main(['sweep', 'run', {str(sweep)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
            "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("rlcomposer: error: sweeps need Ray Tune, which is not installed: "
                                     "pip install 'rlcomposer[sweep]'")
    loaded = subprocess.run([sys.executable, "-c", "import sys, rlcomposer, rlcomposer.cli.main; "
                             "print('ray' in sys.modules)"], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert loaded.stdout.strip() == "False"


# ---- the report (from trial results on disk; no Ray needed) ---------------
def fake_sweep(out: Path, results: dict[tuple[float, int], dict]) -> None:
    """A sweep folder whose trials (kl_target x seed) finished with the given results."""
    trials = []
    for index, ((kl_target, seed), figures) in enumerate(results.items()):
        name = f"{index:03d}-kl_target={kl_target:g},seed={seed}"
        params = {"tune.kl_target": kl_target, "seed": seed}
        config = {**TINY, "name": name, "seed": seed, "tune": {**TINY["tune"], "kl_target": kl_target}}
        trials.append({"index": index, "name": name, "params": params, "config": config})
        folder = out / "trials" / name
        folder.mkdir(parents=True)
        (folder / "trial.json").write_text(json.dumps({"name": name, "params": params, "config": config,
                                                       "results": figures}))
    (out / "sweep.json").write_text(json.dumps({"format": SWEEP_FORMAT, "swept_keys": ["tune.kl_target", "seed"],
                                                "trials": trials, "cpus_per_trial": 1}))


def test_report_groups_over_seeds_with_mean_sd_and_t_interval(tmp_path):
    rng = np.random.default_rng(0)
    results = {}
    for kl_target in (1.5, 3.0):
        for seed in range(3):
            results[kl_target, seed] = {
                "win_rate": float(rng.uniform(0.6, 0.9)), "kl": kl_target + float(rng.normal(0, 0.1)),
                "best_of_n_win_rate": float(rng.uniform(0.6, 0.9)), "kl_best_of_n": kl_target,
                "best_of_n": 20, "labels": 24, "rm_accuracy": 0.7, "rm_ece": 0.05,
                "rm_accuracy_noiseless": 0.75, "style_overlap": 0.8, "style_overlap_best_of_n": 0.85,
                "distinct_patterns": 1.0, "collapse_warnings": 0, "wall_seconds": 10.0 + seed}
    fake_sweep(tmp_path, results)
    report = write_sweep_report(tmp_path)
    assert report.trials == 6 and report.groups == 2
    wins = [results[3.0, seed]["win_rate"] for seed in range(3)]
    group = next(g for g in report.summary if g["tune.kl_target"] == 3.0)
    half = 4.302653 * np.std(wins, ddof=1) / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert group["n"] == 3 and group["win_rate"].mean == pytest.approx(np.mean(wins))
    assert group["win_rate"].std == pytest.approx(np.std(wins, ddof=1))
    assert (group["win_rate"].low, group["win_rate"].high) == pytest.approx(
        (np.mean(wins) - half, np.mean(wins) + half), rel=1e-5)
    with (tmp_path / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and float(rows[1]["win_rate_mean"]) == pytest.approx(np.mean(wins), rel=1e-5)
    with (tmp_path / "trials.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 6
    markdown = (tmp_path / "report.md").read_text()
    assert f"{np.mean(wins):.3f} [{np.mean(wins) - half:.3f}, {np.mean(wins) + half:.3f}]" in markdown
    for plot in ("plots/frontier.png", "plots/accuracy_vs_labels.png"):
        assert (tmp_path / plot).stat().st_size > 10_000


def test_report_of_a_sweep_with_nothing_finished_says_so(tmp_path):
    fake_sweep(tmp_path, {})
    with pytest.raises(SweepError, match="no trial has finished"):
        build_report(tmp_path)


def test_student_t_quantiles():
    assert student_t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-3)
    assert student_t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-3)
    assert student_t_quantile(0.975, 1000) == pytest.approx(1.9623, abs=1e-3)


# ---- sweeps on Ray (slow: Ray starts, trials run) -------------------------
def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlcomposer.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


def comparable(table_csv: Path) -> list[dict[str, str]]:
    """A trials.csv without its timings."""
    with table_csv.open() as handle:
        return [{k: v for k, v in row.items() if k not in ("wall_seconds",)} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_a_local_sweep_runs_every_trial_as_an_experiment_and_reports(tmp_path):
    sweep = write_sweep(tmp_path, grid={"listener": ["lyrical", "panel:3"], "seed": [0, 1]})
    result = cli("sweep", "run", str(sweep), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": done in ") == 4  # a progress line per trial
    for trial in ("000-listener=lyrical,seed=0", "003-listener=panel-3,seed=1"):
        run = tmp_path / "out" / "trials" / trial
        for path in ("report.md", "plots/win_rate.png", "round-0/melodies/tuned-000.mid",
                     "round-0/policy/model.pt", "trial.json"):
            assert (run / path).exists(), path
        assert list((run / "round-0" / "policy" / "tb").rglob("events.out.tfevents*"))  # under one logdir
        assert json.loads((run / "trial.json").read_text())["config"]["tune"]["threads"] == 1
    report = cli("sweep", "report", str(tmp_path / "out"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    summary = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    assert [row["listener"] for row in summary] == ["lyrical", "panel:3"]
    assert all(row["trials"] == "2" and 0 <= float(row["win_rate_mean"]) <= 1 for row in summary)


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    sweep = write_sweep(tmp_path, grid={"seed": [0, 1, 2, 3]}, max_concurrent_trials=1)
    whole = cli("sweep", "run", str(sweep), "--out", str(tmp_path / "whole"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert cli("sweep", "report", str(tmp_path / "whole"), cwd=tmp_path).returncode == 0

    out = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "rlcomposer.cli", "sweep", "run", str(sweep), "--out", str(out)],
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list((out / "trials").glob("*/trial.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # Ctrl-C while the second trial runs
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "rlcomposer sweep resume" in stdout
    finished = {p.parent.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*/trial.json")}
    assert 1 <= len(finished) < 4

    resumed = cli("sweep", "resume", str(out), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count(": done in ") == 4 - len(finished)  # only the unfinished ones ran
    for name, mtime in finished.items():
        assert (out / "trials" / name / "trial.json").stat().st_mtime_ns == mtime
    assert cli("sweep", "report", str(out), cwd=tmp_path).returncode == 0
    assert comparable(out / "trials.csv") == comparable(tmp_path / "whole" / "trials.csv")


@pytest.mark.slow
def test_a_sweep_joins_a_separately_started_head_node(tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="rlc-ray-")  # short: Ray's socket paths must fit
    # the head keeps to the loopback address (Ray's switch for that), with a token of this test's own
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    ray_cli = Path(sys.executable).parent / "ray"
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "2", "--object-store-memory", str(200 * 2**20),
                             "--include-dashboard", "false", "--temp-dir", temp_dir, "--disable-usage-stats"],
                            env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        sweep = write_sweep(tmp_path, grid={"seed": [0, 1]})
        result = subprocess.run([sys.executable, "-m", "rlcomposer.cli", "sweep", "run", str(sweep), "--out",
                                 str(tmp_path / "out"), "--address", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        assert f"on Ray at 127.0.0.1:{port}" in result.stdout
        assert len(list((tmp_path / "out" / "trials").glob("*/trial.json"))) == 2
        # the trials ran on that head node's workers: its session folder holds their logs
        assert list(Path(temp_dir).glob("session_*/logs/worker-*"))
        assert head.poll() is None  # the sweep left the cluster running (it only joined it)
    finally:
        stop_head(head, temp_dir)


def stop_head(head: subprocess.Popen, temp_dir: str) -> None:
    """Stop this test's head node only: its process group, then any process of its session folder
    (never `ray stop`, which stops every Ray on the machine)."""
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, temp_dir)]
        if not left:
            return
        time.sleep(1)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


@pytest.mark.slow
def test_a_failing_trial_is_named_and_the_others_finish(tmp_path):
    (tmp_path / "moody.py").write_text(
        "import numpy as np\n"
        "calls = 0\n"
        "def score(melody):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls > 1000:  # past the calibration on 1,000 prior melodies: the trial fails\n"
        "        raise RuntimeError('moody listener gave up')\n"
        "    return float(np.mean(melody.tokens))\n")
    sweep = write_sweep(tmp_path, grid={"listener": ["lyrical", "moody:score"]})
    result = cli("sweep", "run", str(sweep), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("rlcomposer: error: 1 of 2 trials failed") and "moody listener gave up" in error
    assert "001-listener=moody-score: FAILED" in result.stdout
    assert (tmp_path / "out" / "trials" / "000-listener=lyrical" / "trial.json").exists()


@pytest.mark.slow
def test_a_trial_that_needs_more_cpus_than_ray_has_is_refused(tmp_path):
    sweep = write_sweep(tmp_path, grid={"seed": [0]}, cpus_per_trial=2)
    result = cli("sweep", "run", str(sweep), "--out", str(tmp_path / "out"), "--num-cpus", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "rlcomposer: error: each trial needs 2 CPUs (cpus_per_trial) but the Ray cluster has 1: "
        "lower cpus_per_trial or add nodes")
