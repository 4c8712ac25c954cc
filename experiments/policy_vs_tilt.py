"""Where a tuned policy falls short: the optimiser or the reward model? (issue 20)

For each finished run folder of ``experiments/tuner_eval.py`` (``.../panel-K/seed-S``), with its
reward model and its policy (``round-0/reward_model``, ``round-0/policy``), on ``--pool`` melodies of
the prior (4 bars of 4/4 major):

* **the tilt**: the distribution a KL-regularised tuner aims at, ``p(x) exp(r(x) / beta) / Z`` with
  ``r`` the reward the policy was tuned on (the reward model's members' mean less the run's
  ``reward_uncertainty`` x their spread) and beta set so that its KL to the prior equals the
  policy's measured KL, computed exactly on the pool by importance weights: its mean reward and
  its win-rate against the prior by the member's noiseless score (the pool's own scores as the
  prior's distribution);
* **best-of-N** at the same KL under the same reward, on the same pool (groups of N);
* **the policy**: its mean reward and win-rate, 2,000 of its melodies.

If the tilt wins about as often as best-of-N, a policy that reached the tilt would match best-of-N,
and what keeps the policy behind is how far its optimiser gets (its reward below the tilt's), not
the reward model.

    python experiments/policy_vs_tilt.py runs/te_policy3_u2_big/panel-2/seed-0 [...] [--pool 40960]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from rlcomposer.music.melody import Melody
    from rlcomposer.preferences.listeners import load_listener
    from rlcomposer.preferences.reward_functions import pessimistic_scores, score_melodies
    from rlcomposer.preferences.reward_model import load_reward_model
    from rlcomposer.prior.model import MelodyCondition, load_prior
    from rlcomposer.prior.registry import PriorModel
    from rlcomposer.rl.kl import best_of_n_for_kl
    from rlcomposer.rl.tilt import tilt_beta_for_kl, tilt_weights

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="tuner_eval run folders (panel-K/seed-S)")
    parser.add_argument("--pool", type=int, default=40960, help="prior melodies for the tilt and best-of-N")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    prior = load_prior()
    steps = 64
    condition = MelodyCondition("4/4", "major", steps)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    pool = PriorModel(prior, "prior").sample(args.pool, steps, rng)
    print("| run | policy KL | tilt: reward, win-rate | best-of-N at that KL: N, reward, win-rate | policy: reward, win-rate "
          "| policy's share of the tilt's reward gain |")
    print("|---|---:|---|---|---|---:|")
    for run in args.runs:
        folder = Path(run)
        member = int(folder.parent.name.split("-")[1])
        score, _ = load_listener(f"panel:{member}")
        reward_model = load_reward_model(folder / "round-0" / "reward_model")
        policy = load_prior(folder / "round-0" / "policy")
        tune_config = json.loads((folder / "round-0" / "policy" / "tune_config.json").read_text())
        uncertainty = float(tune_config.get("reward_uncertainty") or 0.0)

        def reward(melodies, model=reward_model, k=uncertainty):
            return pessimistic_scores(model.member_scores(melodies), k)

        true_pool = score_melodies(score, pool)
        reference = np.sort(true_pool)

        def win_rate(scores: np.ndarray, reference=reference) -> np.ndarray:
            below = np.searchsorted(reference, scores, "left")
            at_or_below = np.searchsorted(reference, scores, "right")
            return (below + at_or_below) / 2 / len(reference)  # ties count a half

        r = np.asarray(reward(pool))
        with torch.no_grad():
            tokens = torch.as_tensor(policy.sample(2000, steps, generator, condition=condition)).long()
            kl = float((policy.log_likelihood(tokens, condition).sum(-1)
                        - prior.log_likelihood(tokens, condition).sum(-1)).mean())
        drawn = [Melody(row) for row in tokens.numpy()]
        policy_reward = float(np.mean(reward(drawn)))
        policy_win = float(win_rate(score_melodies(score, drawn)).mean())
        w = tilt_weights(r, tilt_beta_for_kl(r, kl))
        tilt_reward = float((w * r).sum())
        tilt_win = float((w * win_rate(true_pool)).sum())
        n = best_of_n_for_kl(kl)
        groups = len(pool) // n
        grouped = r[:groups * n].reshape(groups, n)
        best = grouped.argmax(1)
        bon_reward = float(grouped[np.arange(groups), best].mean())
        bon_win = float(win_rate(true_pool[:groups * n].reshape(groups, n)[np.arange(groups), best]).mean())
        share = (policy_reward - r.mean()) / (tilt_reward - r.mean())
        print(f"| panel:{member} {folder.name} (λ {uncertainty:g}) | {kl:.2f} | {tilt_reward:.2f}, {tilt_win:.3f} "
              f"(effective sample {1 / (w ** 2).sum():.0f}) | {n}, {bon_reward:.2f}, {bon_win:.3f} | "
              f"{policy_reward:.2f}, {policy_win:.3f} | {share:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
