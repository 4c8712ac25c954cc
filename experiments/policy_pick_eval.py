"""Policy + best-of-k with a KL-aware pick, re-judged on finished ``tuner_eval.py`` runs.

For each run folder (``OUT/panel-K/seed-S``, its round-0 policy and reward model kept), the
policy's best of k is picked by the standardised reward minus ``c`` × log π/p for each ``c`` of
``--weights`` (0: the plain best of k), and each is judged against the same prior melodies by
the member's noiseless preference, with its KL (the chosen melodies' mean log π/p + log k −
(k − 1)/k) and best-of-N from the prior at that KL. Best-of-N's win-rate is read off one curve
per run (N on a grid, win-rate against KL, linearly interpolated), so that every ``c`` is set
beside the same best-of-N melodies.

    python experiments/policy_pick_eval.py runs/te_k8_choose --weights 0,0.25,0.5,1

``--reward-uncertainty`` (several λ, comma-separated) scores every pick, best-of-N's and the
policy's, by the reward ensemble's members' mean less λ × their spread (``tune``'s
``reward_uncertainty``, ``continue --reward-uncertainty``); best-of-N's candidates are drawn once
per N and shared by every λ.

    python experiments/policy_pick_eval.py runs/te_choose --weights 0.25 --reward-uncertainty 0,1,2

Prints one line per run, λ and weight, then the median over runs per λ and weight.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    import torch

    from rlcomposer.experiments.loop import Experiment, resume_config
    from rlcomposer.preferences.reward_functions import ConservativeReward, pessimistic_scores
    from rlcomposer.preferences.reward_model_cache import load_reward_model_cached
    from rlcomposer.prior.model import load_prior
    from rlcomposer.rl.best_of_n import PolicyBestOfKModel
    from rlcomposer.rl.kl import best_of_n_kl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a tuner_eval.py results folder")
    parser.add_argument("--weights", default="0,0.25,0.5,1", help="comma-separated KL weights c of the pick")
    parser.add_argument("--k", type=int, default=8, help="k of best-of-k (default 8)")
    parser.add_argument("--n", type=int, default=500, help="melodies judged per weight (default 500)")
    parser.add_argument("--grid", default="8,16,24,32,48,64,96,128,192",
                        help="best-of-N's N values for its win-rate curve")
    parser.add_argument("--reward-uncertainty", default="0",
                        help="comma-separated λ: picks by the members' mean less λ x their spread (default 0)")
    parser.add_argument("--budget", type=int, default=32768, help="candidates per N of the curve (default 32,768)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    weights = [float(w) for w in args.weights.split(",")]
    lambdas = [float(x) for x in args.reward_uncertainty.split(",")]
    grid = [int(n) for n in args.grid.split(",")]
    per_weight: dict[tuple[float, float], list[tuple[float, float, float]]] = {
        (lam, w): [] for lam in lambdas for w in weights}
    for run in sorted(Path(args.out).glob("panel-*/seed-*")):
        if not (run / "round-0" / "policy").is_dir():
            continue
        config = resume_config(run)
        experiment = Experiment(config, run, log=lambda _: None, progress=False)
        experiment._set_up_listener()
        prior_model = experiment.prior_model
        steps, condition = experiment._num_steps, experiment._condition
        policy = load_prior(run / "round-0" / "policy")
        reward_model = load_reward_model_cached(run / "round-0" / "reward_model")
        rng = np.random.default_rng(1234)
        base = prior_model.sample(args.n, steps, rng, condition=condition)
        curve_kl, curve_win = [], {lam: [] for lam in lambdas}
        for n in grid:
            size = min(args.n, max(args.budget // n, 16))
            candidates = prior_model.sample(size * n, steps, rng, condition=condition)
            members = reward_model.member_scores(candidates)
            curve_kl.append(best_of_n_kl(n))
            for lam in lambdas:
                scores = pessimistic_scores(members, lam).reshape(size, n)
                best = [candidates[i * n + int(j)] for i, j in enumerate(scores.argmax(axis=1))]
                curve_win[lam].append(float(np.mean(experiment.listener.preferences(best, base[:size]))))
        for lam in lambdas:
            reward = reward_model if lam == 0 else ConservativeReward(reward_model, lam)
            for weight in weights:
                mode = PolicyBestOfKModel(policy, prior_model.prior, reward, args.k, "reward model", "policy", weight)
                chosen = mode.sample(args.n, steps, rng, condition=condition)
                kl = mode.kl_estimate(chosen)
                win = float(np.mean(experiment.listener.preferences(chosen, base)))
                best_win = float(np.interp(kl, curve_kl, curve_win[lam]))
                per_weight[(lam, weight)].append((win, kl, best_win))
                print(f"{run.parent.name}/{run.name} λ={lam:g} c={weight:g}: win-rate {win:.3f} at KL {kl:.2f} | "
                      f"best-of-N at that KL {best_win:.3f} | gap {win - best_win:+.3f} | best-of-N curve "
                      + " ".join(f"{n}:{w:.3f}" for n, w in zip(grid, curve_win[lam], strict=True)), flush=True)
    for (lam, weight), rows in per_weight.items():
        if rows:
            wins, kls, bests = (np.array(column) for column in zip(*rows, strict=True))
            print(f"λ={lam:g} c={weight:g}: median win-rate {np.median(wins):.3f}, median KL {np.median(kls):.2f}, "
                  f"median gap {np.median(wins - bests):+.3f} over {len(rows)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
