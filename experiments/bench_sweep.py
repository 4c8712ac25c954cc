"""Wall time of a 6-trial sweep (2 KL targets x 3 seeds) on this machine: two trials at once with
one torch thread each, against the same trials one after another with two threads each.

Both halves go through Ray Tune (``rlcomposer.sweep``), in the same run, on a local Ray with
all of the machine's CPUs: ``cpus_per_trial: 1`` lets two trials run side by side,
``cpus_per_trial: 2`` leaves room for one. The trials are the closed loop of
``experiments/configs/quickstart.yaml`` made smaller (``--scale``: pool, comparisons,
evaluation pairs and PPO steps). The load average is printed before and after: other
jobs on the machine slow both halves.

    python experiments/bench_sweep.py [--out runs/bench-sweep] [--scale 0.2] [--order sequential-first]

Last line: ``speedup: N.Nx`` (sequential wall time / concurrent wall time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent


def sweep_file(folder: Path, cpus_per_trial: int, scale: float) -> Path:
    """The 6-trial sweep: tune.kl_target 1.5 / 3 x seeds 0, 1, 2 on a smaller quickstart loop."""
    sweep = {
        "experiment": str(ROOT / "configs" / "quickstart.yaml"),
        "set": {"pool_size": max(int(300 * scale), 40), "comparisons_per_round": max(int(300 * scale), 40),
                "evaluation_pairs": max(int(500 * scale), 64), "export_melodies": 2,
                # a fixed N: an automatic one follows each run's KL, so the halves would not do the same work
                "best_of_n": 32,
                "tune": {"total_timesteps": max(int(262_144 * scale) // 4096, 1) * 4096, "checkpoint_every": 0}},
        "grid": {"tune.kl_target": [1.5, 3.0], "seed": [0, 1, 2]},
        "cpus_per_trial": cpus_per_trial,
    }
    path = folder / f"sweep-{cpus_per_trial}cpu.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False), encoding="utf-8")
    return path


def run_half(folder: Path, cpus_per_trial: int, scale: float) -> tuple[float, int]:
    from rlcomposer.sweep.runner import SweepRunConfig, run_sweep
    from rlcomposer.sweep.spec import load_sweep

    spec = load_sweep(sweep_file(folder, cpus_per_trial, scale))
    out = folder / f"{cpus_per_trial}cpu-per-trial"
    started = time.monotonic()
    outcome = run_sweep(spec, SweepRunConfig(out=out), say=lambda line: print(f"  {line}", flush=True))
    seconds = time.monotonic() - started
    if outcome.errored or outcome.interrupted:
        raise SystemExit(f"the {cpus_per_trial}-CPU half did not finish: {outcome.errored or 'interrupted'}")
    return seconds, outcome.finished


def work(out: Path) -> str:
    """What a half's trials did: PPO env-steps and best-of-N candidates (equal work, equal halves)."""
    from rlcomposer.sweep.runner import finished_trials

    steps = candidates = 0
    for trial in finished_trials(out).values():
        config, results = trial["config"], trial["results"]
        steps += config["tune"]["total_timesteps"]
        n = results["best_of_n"]
        candidates += n * min(config["evaluation_pairs"], max(config["best_of_n_budget"] // n, 16))
    return f"{steps} PPO env-steps, {candidates} best-of-N candidates"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-sweep", help="folder for both sweeps (emptied first)")
    parser.add_argument("--scale", type=float, default=0.2, help="trial size relative to quickstart.yaml")
    parser.add_argument("--order", choices=("sequential-first", "concurrent-first"), default="sequential-first")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_INIT", "1")
    folder = Path(args.out)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores",
          flush=True)
    halves = [("sequential", 2), ("concurrent", 1)]
    if args.order == "concurrent-first":
        halves.reverse()
    seconds = {}
    for name, cpus in halves:
        what = ("one trial at a time, 2 torch threads each" if cpus == 2
                else "2 trials at a time, 1 torch thread each")
        print(f"{name}: 6 trials, {what}", flush=True)
        seconds[name], finished = run_half(folder, cpus, args.scale)
        print(f"{name}: {finished} trials in {seconds[name]:.0f} s "
              f"({work(folder / f'{cpus}cpu-per-trial')})", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"sequential (2 threads each): {seconds['sequential']:.0f} s; "
          f"concurrent (2 at a time, 1 thread each): {seconds['concurrent']:.0f} s")
    print(f"speedup: {seconds['sequential'] / seconds['concurrent']:.1f}x")


if __name__ == "__main__":
    main()
