"""Evaluate tuning methods on the listener panel: the whole loop per member, seed and method.

Each run is ``rlcomposer experiment run`` (``experiments/configs/quickstart.yaml``
with the method's overrides) with a panel member as the listener, at most 300
noisy labels in total, judged by the member's noiseless preference on fresh
tuned-vs-prior pairs. Beside each method's win-rate the run reports best-of-N
(under the same reward model) at the tuned policy's KL, the musicality of the
tuned melodies (style overlap with the held-out corpus, distinct 4-note
patterns relative to the prior's) and the member's difficulty (best-of-64's
win-rate and the reward model's accuracy against the noiseless preference).

The panel is split once (:data:`rlcomposer.preferences.panel.CHOOSE_MEMBERS`
and :data:`~rlcomposer.preferences.panel.REPORT_MEMBERS`): compare variants on
the choosing half (``--members choose``), quote results on the report half
(``--members report``) only, with the default chosen beforehand.

Every run's result is saved as it finishes (``OUT/METHOD/panel-K/seed-S/result.json``)
and a restart skips finished runs, so the table can be built over several
sittings. Two runs go side by side with one torch thread each (``--jobs``).

    python experiments/panel_eval.py --members report --seeds 0,1 --methods default,dpo
    python experiments/panel_eval.py --members choose --seeds 0 --methods beta-0.1,kl-target-3,...

The last line is ``panel median win-rate: X``: the first method's, for the melodies its
runs call tuned (best-of-N at the PPO policy's KL under the default ``tuned_melodies``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

BASE_CONFIG = Path(__file__).parent / "configs" / "quickstart.yaml"

METHODS: dict[str, dict] = {
    # the defaults of `tune` and `experiment run` (whatever they are)
    "default": {},
    # the variants compared on the choosing half (each spelled out, whatever the defaults)
    "beta-0.1": {"tune": {"kl_beta": 0.1, "kl_target": None, "reward_uncertainty": 0.0}},
    "kl-target-1.5": {"tune": {"kl_target": 1.5, "reward_uncertainty": 0.0}},
    "kl-target-3": {"tune": {"kl_target": 3.0, "reward_uncertainty": 0.0}},
    "kl-target-6": {"tune": {"kl_target": 6.0, "reward_uncertainty": 0.0}},
    "kl-target-3-lcb-1": {"tune": {"kl_target": 3.0, "reward_uncertainty": 1.0}},
    "rounds-2-kl-target-3": {"rounds": 2, "comparisons_per_round": 150, "strategy": "active",
                             "tune": {"kl_target": 3.0, "reward_uncertainty": 0.0}},
    "dpo": {"tune": {"algorithm": "dpo"}},
}


def _run_one(job: dict) -> dict:
    """One loop run in its own process (one torch thread); writes and returns its result."""
    import torch

    torch.set_num_threads(1)
    from rlcomposer.experiments.loop import Experiment, load_experiment_config

    run_dir = Path(job["run_dir"])
    overrides = {"name": f"{job['method']}-panel{job['member']}-s{job['seed']}",
                 "listener": f"panel:{job['member']}", "seed": job["seed"],
                 # the member's difficulty does not depend on the method: measured with the default only
                 "difficulty_best_of": 64 if job["method"] == "default" else 0, "best_of_n_budget": 16384,
                 **{k: v for k, v in job["overrides"].items() if k != "tune"}}
    config = load_experiment_config(BASE_CONFIG, overrides)
    tune_overrides = {**config.tune, "threads": 1, **job["overrides"].get("tune", {})}
    from dataclasses import replace

    config = replace(config, tune=tune_overrides)
    started = time.monotonic()
    experiment = Experiment(config, run_dir, log=lambda message: None, progress=False)
    results = experiment.run()
    last = results[-1]
    result = {
        "method": job["method"], "member": job["member"], "seed": job["seed"],
        "win_rate": last.win_rate, "kl": last.kl_tuned,
        "best_of_n": last.best_of_n, "best_of_n_kl": last.kl_best_of_n,
        "best_of_n_win_rate": last.best_of_n_win_rate,
        "difficulty_best_of_64": last.difficulty_win_rate,
        "rm_noiseless_accuracy": last.reward_model.get("noiseless_accuracy"),
        "rm_held_out_accuracy": last.reward_model.get("held_out", {}).get("accuracy"),
        "tuned_melodies": config.tuned_melodies,
        "best_of_n_style_overlap": last.musicality[f"best-of-{last.best_of_n}"]["style_overlap"],
        "best_of_n_patterns_vs_prior": last.musicality[f"best-of-{last.best_of_n}"]["distinct_pattern_ratio"],
        "style_overlap": last.musicality["tuned"]["style_overlap"],
        "prior_style_overlap": last.musicality["prior"]["style_overlap"],
        "distinct_patterns_vs_prior": last.musicality["tuned"]["distinct_pattern_ratio"],
        "monotone_share": last.musicality["tuned"]["monotone_share"],
        "collapse_warnings": last.collapse_warnings,
        "labels": last.comparisons, "seconds": time.monotonic() - started,
    }
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _quartiles(values: list[float]) -> tuple[float, float]:
    array = np.array([v for v in values if v is not None], dtype=float)
    if not array.size:
        return float("nan"), float("nan")
    return float(np.median(array)), float(np.quantile(array, 0.25))


def _rows(results: list[dict], methods: list[str]) -> list[tuple[str, list[dict]]]:
    """Each method's tuned policy, and (for PPO runs) best-of-N at that policy's KL, as rows.

    A row is a list of per-run dicts with the keys win_rate, kl, style_overlap, patterns."""
    rows = []
    for method in methods:
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        policy = "DPO policy" if method == "dpo" else "PPO policy"
        rows.append((f"{method}: {policy}", [
            {"win_rate": r["win_rate"], "kl": r["kl"], "style_overlap": r["style_overlap"],
             "patterns": r["distinct_patterns_vs_prior"], "collapsed": bool(r["collapse_warnings"])}
            for r in runs]))
        rows.append((f"{method}: best-of-N at that KL", [
            {"win_rate": r["best_of_n_win_rate"], "kl": r["best_of_n_kl"],
             "style_overlap": r.get("best_of_n_style_overlap", float("nan")),
             "patterns": r.get("best_of_n_patterns_vs_prior", float("nan")),
             "collapsed": bool(r["collapse_warnings"])} for r in runs]))
    return rows


def _table(results: list[dict], methods: list[str]) -> str:
    lines = ["| method | runs | median win-rate | worst quartile | KL (median) | tuned style overlap "
             "(prior's) | distinct 4-note patterns vs prior | runs with a collapse warning |",
             "|---|---|---|---|---|---|---|---|"]
    prior_style = np.median([r["prior_style_overlap"] for r in results]) if results else float("nan")
    for name, rows in _rows(results, methods):
        median, quartile = _quartiles([r["win_rate"] for r in rows])
        lines.append(
            f"| {name} | {len(rows)} | {median:.3f} | {quartile:.3f} | "
            f"{np.median([r['kl'] for r in rows]):.2f} | "
            f"{np.median([r['style_overlap'] for r in rows]):.3f} ({prior_style:.3f}) | "
            f"{np.median([r['patterns'] for r in rows]):.2f} | {sum(r['collapsed'] for r in rows)} |")
    return "\n".join(lines)


def headline(result: dict) -> float | None:
    """The win-rate of the melodies a method's run calls tuned (best-of-N by default)."""
    if result.get("tuned_melodies") == "best-of-n" and result["method"] != "dpo":
        return result["best_of_n_win_rate"]
    return result["win_rate"]


def _member_table(results: list[dict]) -> str:
    lines = ["| method | member | seed | win-rate | KL | best-of-N (N) | difficulty: best-of-64 | "
             "RM acc. vs noiseless | style overlap | patterns vs prior |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(value, digits=3):
        return "n/a" if value is None else f"{value:.{digits}f}"

    for r in sorted(results, key=lambda r: (r["method"], r["member"], r["seed"])):
        lines.append(
            f"| {r['method']} | panel:{r['member']} | {r['seed']} | {cell(r['win_rate'])} | {r['kl']:.2f} | "
            f"{cell(r['best_of_n_win_rate'])} ({r['best_of_n']}) | {cell(r['difficulty_best_of_64'])} | "
            f"{cell(r['rm_noiseless_accuracy'])} | {r['style_overlap']:.3f} | "
            f"{r['distinct_patterns_vs_prior']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from rlcomposer.preferences.panel import CHOOSE_MEMBERS, PANEL_SIZE, REPORT_MEMBERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="report",
                        help="report (the report half), choose (the choosing half) or indices like 12,13")
    parser.add_argument("--count", type=int, default=None, help="only the first COUNT members of the half")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--methods", default="default,dpo", help=f"comma-separated: {', '.join(METHODS)}")
    parser.add_argument("--out", default="runs/panel_eval", help="results folder (default runs/panel_eval)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the tables of the runs finished so far; run nothing")
    args = parser.parse_args(argv)
    if args.members == "report":
        members = list(REPORT_MEMBERS)
    elif args.members == "choose":
        members = list(CHOOSE_MEMBERS)
    else:
        members = [int(m) for m in args.members.split(",")]
        if any(not 0 <= m < PANEL_SIZE for m in members):
            parser.error(f"panel members are 0..{PANEL_SIZE - 1}")
    members = members[: args.count] if args.count else members
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r} (known: {', '.join(METHODS)})")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    jobs, results = [], []
    for method in methods:
        for member in members:
            for seed in seeds:
                run_dir = out / method / f"panel-{member}" / f"seed-{seed}"
                done = run_dir / "result.json"
                if done.exists():
                    results.append(json.loads(done.read_text()))
                    continue
                jobs.append({"method": method, "member": member, "seed": seed, "run_dir": str(run_dir),
                             "overrides": METHODS[method]})
    print(f"{len(results)} runs finished earlier, {0 if args.table_only else len(jobs)} to run", flush=True)
    if args.table_only:
        jobs = []
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for result in pool.map(_run_one, jobs):
            results.append(result)
            print(f"  {result['method']} panel:{result['member']} seed {result['seed']}: "
                  f"win-rate {result['win_rate']:.3f} at KL {result['kl']:.2f} "
                  f"(best-of-{result['best_of_n']}: {result['best_of_n_win_rate']:.3f}); style overlap "
                  f"{result['style_overlap']:.3f}; {result['seconds']:.0f} s", flush=True)
    print()
    print(_member_table(results))
    print()
    print(_table(results, methods))
    first = [headline(r) for r in results if r["method"] == methods[0]]
    print()
    print(f"panel median win-rate: {_quartiles(first)[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
