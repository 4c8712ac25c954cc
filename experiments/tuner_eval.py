"""Compare tuners side by side on the listener panel: one loop per member and seed, every tuner
on the same pool, labels and reward model, each judged against the prior by the member's
noiseless preference and beside best-of-N from the prior at its own KL.

Each run is ``rlcomposer experiment run`` (``experiments/configs/quickstart.yaml``, 300 noisy
labels) with ``tuners: [...]`` and ``policy_best_of_k``. Choose on the choosing half
(``--members choose``), quote the report half (``--members report``) only, with the tuner
chosen beforehand.

    python experiments/tuner_eval.py --members choose --seeds 0 --tuners sequence,vbon,rloo,vbon-rloo,best-of-n
    python experiments/tuner_eval.py --members 12,14,16,18,20,22 --seeds 0,1 --tuners vbon-rloo,sequence,best-of-n
    python experiments/tuner_eval.py --members 13,15,17 --seeds 0 --bars 16 --out runs/tuner_eval_16

Every run's result is saved as it finishes (``OUT/panel-K/seed-S/result.json``) and a restart
skips finished runs. The last line is ``median gap to best-of-N: X`` for the first tuner
(its win-rate minus best-of-N's at its KL, median over runs).
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


def _run_one(job: dict) -> dict:
    """One loop (every tuner) in its own process with one torch thread; writes its result."""
    import torch

    torch.set_num_threads(1)
    from dataclasses import replace

    from rlcomposer.experiments.loop import Experiment, load_experiment_config

    run_dir = Path(job["run_dir"])
    overrides = {"name": f"tuners-panel{job['member']}-s{job['seed']}", "listener": f"panel:{job['member']}",
                 "seed": job["seed"], "tuners": job["tuners"], "policy_best_of_k": job["best_of_k"],
                 "policy_pick_kl_weight": job.get("pick_kl_weight", 0.25),
                 "policy_pick_holds_kl": job.get("pick_holds_kl", True),
                 "best_of_n_budget": 16384, "tuned_melodies": job.get("tuned_melodies", "policy")}
    config = load_experiment_config(BASE_CONFIG, overrides)
    tune = {**config.tune, "threads": 1, **job["tune"]}
    config = replace(config, tune=tune)
    started = time.monotonic()
    (result,) = Experiment(config, run_dir, log=lambda message: None, progress=False).run()
    record = {"member": job["member"], "seed": job["seed"], "kl_target": config.tune_config().kl_target,
              "rm_noiseless_accuracy": result.reward_model.get("noiseless_accuracy"),
              "prior_style_overlap": result.musicality["prior"]["style_overlap"],
              "tuners": result.tuners, "seconds": time.monotonic() - started}
    (run_dir / "result.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _median_and_quartile(values) -> tuple[float, float]:
    array = np.array([v for v in values if v is not None], dtype=float)
    if not array.size:
        return float("nan"), float("nan")
    return float(np.median(array)), float(np.quantile(array, 0.25))


def table(results: list[dict]) -> str:
    """One row per tuner: win-rate (median, worst quartile), its gap to best-of-N at equal KL,
    KL and how far from the target, musicality and cost."""
    names = list(dict.fromkeys(name for r in results for name in r["tuners"]))
    lines = ["| tuner | runs | median win-rate | worst quartile | best-of-N at equal KL (median) | "
             "median gap | KL median (runs within ±10% of target) | style overlap (prior's) | "
             "4-note patterns vs prior | tune s | melodies/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    prior_style = np.median([r["prior_style_overlap"] for r in results])
    for name in names:
        rows = [(r, r["tuners"][name]) for r in results if name in r["tuners"]]
        wins = [row["win_rate"] for _, row in rows]
        median, quartile = _median_and_quartile(wins)
        best = [row["best_of_n_win_rate"] for _, row in rows]
        gaps = [w - b for w, b in zip(wins, best, strict=True) if w is not None and b is not None]
        kls = [row["kl"] for _, row in rows]
        within = sum(abs(row["kl"] / run["kl_target"] - 1) <= 0.10 for run, row in rows)
        style = np.median([row["musicality"]["style_overlap"] for _, row in rows])
        patterns = np.median([row["musicality"]["distinct_pattern_ratio"] for _, row in rows])
        best_cell = f"{_median_and_quartile(best)[0]:.3f}" if gaps else "—"
        gap_cell = f"{np.median(gaps):+.3f}" if gaps else "—"
        lines.append(f"| {name} | {len(rows)} | {median:.3f} | {quartile:.3f} | {best_cell} | {gap_cell} | "
                     f"{np.median(kls):.2f} ({within}/{len(rows)}) | {style:.3f} ({prior_style:.3f}) | "
                     f"{patterns:.2f} | {np.median([row['tune_seconds'] for _, row in rows]):.0f} | "
                     f"{np.median([row['melodies_per_second'] for _, row in rows]):.0f} |")
    return "\n".join(lines)


def per_run_table(results: list[dict]) -> str:
    lines = ["| member | seed | tuner | win-rate | KL | best-of-N at that KL (N) | style overlap | "
             "patterns vs prior | RM acc. vs noiseless |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["member"], r["seed"])):
        for name, row in r["tuners"].items():
            best = ("—" if row["best_of_n"] is None else
                    f"{row['best_of_n_win_rate']:.3f} ({row['best_of_n']})")
            lines.append(f"| panel:{r['member']} | {r['seed']} | {name} | {row['win_rate']:.3f} | {row['kl']:.2f} | "
                         f"{best} | {row['musicality']['style_overlap']:.3f} | "
                         f"{row['musicality']['distinct_pattern_ratio']:.2f} | {r['rm_noiseless_accuracy']:.3f} |")
    return "\n".join(lines)


def examples(results: list[dict], count: int = 2) -> str:
    lines = []
    for r in sorted(results, key=lambda r: (r["member"], r["seed"]))[:count]:
        for name, row in r["tuners"].items():
            for example in row.get("examples", [])[:1]:
                lines.append(f"* panel:{r['member']} seed {r['seed']}, {name}: `{example}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from rlcomposer.preferences.panel import (
        CHOOSE_MEMBERS,
        METRE_MEMBERS,
        PANEL_SIZE,
        REPORT_MEMBERS,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="choose",
                        help="choose (the choosing half), report (the report half), metre-choose / metre-report "
                             "(their members who hear the metre) or indices like 12,14")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--tuners", default="sequence,vbon,rloo,vbon-rloo,best-of-n",
                        help="comma-separated tuner names, the first is the headline")
    parser.add_argument("--best-of-k", type=int, default=4, help="k of policy + best-of-k (0: skip)")
    parser.add_argument("--pick-kl-weight", type=float, default=0.25,
                        help="policy + best-of-k picks by standardised reward minus this x log pi/p, with "
                             "--no-pick-holds-kl (default 0.25)")
    parser.add_argument("--pick-holds-kl", action=argparse.BooleanOptionalAction, default=True,
                        help="set the pick weight each run so that policy + best-of-k meets the KL target "
                             "(default; --no-pick-holds-kl: --pick-kl-weight as given)")
    parser.add_argument("--tuned-melodies", choices=("policy", "policy-best-of-k"), default="policy",
                        help="policy (default): every tuner gets the whole kl_target and policy + best-of-k "
                             "lands where it lands; policy-best-of-k: as experiment run does by default, the "
                             "policies get policy_kl_share of kl_target and the pick holds the whole target")
    parser.add_argument("--bars", type=int, default=None, help="melody length in bars (default: the config's 4)")
    parser.add_argument("--metre", default=None, help="metre (default: the config's 4/4)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a tune config key for every tuner (e.g. kl_gain=0.5)")
    parser.add_argument("--out", default="runs/tuner_eval", help="results folder")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2)")
    parser.add_argument("--table-only", action="store_true", help="print the tables of finished runs")
    args = parser.parse_args(argv)
    if args.members in ("choose", "report"):
        members = list(CHOOSE_MEMBERS if args.members == "choose" else REPORT_MEMBERS)
    elif args.members in ("metre-choose", "metre-report"):
        half = CHOOSE_MEMBERS if args.members == "metre-choose" else REPORT_MEMBERS
        members = [m for m in half if m in METRE_MEMBERS]
    else:
        members = [int(m) for m in args.members.split(",")]
        if any(not 0 <= m < PANEL_SIZE for m in members):
            parser.error(f"panel members are 0..{PANEL_SIZE - 1}")
    tune: dict = {}
    if args.bars is not None:
        tune["num_bars"] = args.bars
    if args.metre is not None:
        tune["metre"] = args.metre
    for item in args.set:
        key, _, value = item.partition("=")
        tune[key] = json.loads(value) if value[:1] in "-0123456789[{tfn" else value
    tuners = [t.strip() for t in args.tuners.split(",") if t.strip()]
    out = Path(args.out)
    jobs, results = [], []
    for member in members:
        for seed in (int(s) for s in args.seeds.split(",")):
            run_dir = out / f"panel-{member}" / f"seed-{seed}"
            if (run_dir / "result.json").exists():
                results.append(json.loads((run_dir / "result.json").read_text()))
            elif not args.table_only:
                jobs.append({"member": member, "seed": seed, "run_dir": str(run_dir), "tuners": tuners,
                             "best_of_k": args.best_of_k, "tune": tune,
                             "pick_kl_weight": args.pick_kl_weight, "pick_holds_kl": args.pick_holds_kl,
                             "tuned_melodies": args.tuned_melodies})
    print(f"{len(results)} runs finished earlier, {len(jobs)} to run", flush=True)
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for record in pool.map(_run_one, jobs):
            results.append(record)
            summary = "; ".join(f"{name} {row['win_rate']:.3f} @ {row['kl']:.2f}"
                                + (f" (BoN {row['best_of_n_win_rate']:.3f})" if row["best_of_n"] else "")
                                for name, row in record["tuners"].items())
            print(f"  panel:{record['member']} seed {record['seed']}: {summary}; {record['seconds']:.0f} s",
                  flush=True)
    if not results:
        return 0
    print()
    print(per_run_table(results))
    print()
    print(table(results))
    print()
    print(examples(results))
    first = tuners[0]
    gaps = [r["tuners"][first]["win_rate"] - r["tuners"][first]["best_of_n_win_rate"] for r in results
            if first in r["tuners"] and r["tuners"][first]["best_of_n_win_rate"] is not None]
    print()
    print(f"median gap to best-of-N: {np.median(gaps) if gaps else float('nan'):+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
