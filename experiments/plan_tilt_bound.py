"""How much of the tilt a choice of *plan* alone could buy (issue 20).

A plan is a few melody-wide descriptors, each cut into terciles at the prior's own quantiles
(where the climax falls, the range, the last note's length, ...). The *plan tilt* draws a plan c
from q(c) ∝ p(c)·E_p[e^{r/β} | c] and then a melody from the prior given that plan, p(x | c):
the best a tuner can do that only chooses the plan and leaves every note to the prior. Its KL to
the prior is exactly KL(q‖p) over plans. On ``--pool`` prior melodies (4 bars of 4/4 major) with
each member's noiseless score as r, this prints, at a few KLs, the win-rate against the prior of
the plan tilt, the full tilt and best-of-N: if a plan tilt gets most of the full tilt's gain at a
fraction of its KL, a policy that chooses a plan first and then writes notes for it (a prior
conditioned on plans, as it is on its final) has an easier job than one that must find the
melody-wide shape note by note.

    python experiments/plan_tilt_bound.py --members 0,1,2,3 --plans climax_position,range,final_length
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def plan_tilt(r: np.ndarray, plan: np.ndarray, p_plan: np.ndarray, beta: float) -> tuple[np.ndarray, float]:
    """The plan distribution q(c) ∝ p(c)·mean over the plan's melodies of e^{r/β}, and KL(q‖p)."""
    e = np.exp((r - r.max()) / beta)
    q = p_plan * (np.bincount(plan, e) / np.bincount(plan))
    q /= q.sum()
    kept = q > 0
    return q, float(np.sum(q[kept] * np.log(q[kept] / p_plan[kept])))


def win_rates(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each value's win-rate against the sorted ``reference`` scores (ties count a half)."""
    return (np.searchsorted(reference, values, "left") + np.searchsorted(reference, values, "right")) / 2 / len(reference)


def main(argv: list[str] | None = None) -> int:
    import torch

    from rlcomposer.preferences.descriptors import DESCRIPTOR_NAMES, describe
    from rlcomposer.preferences.listeners import load_listener
    from rlcomposer.preferences.reward_functions import score_melodies
    from rlcomposer.prior.model import load_prior
    from rlcomposer.prior.registry import PriorModel
    from rlcomposer.rl.kl import best_of_n_for_kl
    from rlcomposer.rl.tilt import tilt_beta_for_kl, tilt_weights

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="0,1,2,3,4,5", help="panel members (choosing half: 0-11)")
    parser.add_argument("--plans", action="append", default=None,
                        help="comma-separated descriptors making a plan (repeat for several plans)")
    parser.add_argument("--bins", type=int, default=3, help="quantile bins per descriptor (default 3)")
    parser.add_argument("--pool", type=int, default=40960)
    parser.add_argument("--kls", default="1,2,3")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    plans = [p.split(",") for p in (args.plans or ["climax_position,range,final_length"])]
    for plan in plans:
        for name in plan:
            if name not in DESCRIPTOR_NAMES:
                parser.error(f"unknown descriptor {name!r}")
    rng = np.random.default_rng(args.seed)
    pool = PriorModel(load_prior(), "prior").sample(args.pool, 64, rng)
    described = describe(pool)

    def plan_ids(names: list[str]) -> np.ndarray:
        ids = np.zeros(len(pool), dtype=np.int64)
        for name in names:
            column = described[:, DESCRIPTOR_NAMES.index(name)]
            edges = np.unique(np.quantile(column, np.linspace(0, 1, args.bins + 1)[1:-1]))
            ids = ids * (args.bins + 1) + np.searchsorted(edges, column, side="right")
        return ids

    kls = [float(k) for k in args.kls.split(",")]
    print("| member | plan | plans used | " + " | ".join(f"KL {k:g}: plan tilt / tilt / best-of-N" for k in kls) + " |")
    print("|---|---|---:|" + "---|" * len(kls))
    for member in [int(m) for m in args.members.split(",")]:
        score, _ = load_listener(f"panel:{member}")
        r = np.asarray(score_melodies(score, pool), dtype=np.float64)
        reference = np.sort(r)
        wins = win_rates(r, reference)
        full = {k: float(tilt_weights(r, tilt_beta_for_kl(r, k)) @ wins) for k in kls}
        bon = {}
        for k in kls:
            n = best_of_n_for_kl(k, 4096)
            bon[k] = float(win_rates(r[: len(r) // n * n].reshape(-1, n).max(axis=1), reference).mean())
        for plan in plans:
            ids = plan_ids(plan)
            _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
            p_plan = counts / len(r)
            cells = []
            kl_max = plan_tilt(r, inverse, p_plan, 1e-4)[1]
            for k in kls:
                if kl_max < k:
                    cells.append(f"max KL {kl_max:.2f}")
                    continue
                low, high = np.log(1e-4), np.log(1e4)
                for _ in range(60):
                    mid = (low + high) / 2
                    kl = plan_tilt(r, inverse, p_plan, float(np.exp(mid)))[1]
                    low, high = (mid, high) if kl > k else (low, mid)
                q, _ = plan_tilt(r, inverse, p_plan, float(np.exp((low + high) / 2)))
                plan_win = float(np.sum(q * (np.bincount(inverse, wins) / counts)))
                cells.append(f"{plan_win:.3f} / {full[k]:.3f} / {bon[k]:.3f}")
            print(f"| {member} | {'+'.join(plan)} | {len(counts)} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
