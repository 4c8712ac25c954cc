"""The policy optimiser alone: tune against a panel member's own score (no reward model, no noise)
and compare with best-of-N under that same score at the policy's KL.

With the true reward there is no reward-model error to limit best-of-N, so what is left between
a tuned policy and best-of-N at equal KL is the policy optimiser's own shortfall.

    python experiments/true_reward_tuning.py --member 2 --specs sequence,vbon,rloo,vbon-rloo
    python experiments/true_reward_tuning.py --member 2 --specs "rloo:kl_warmup=0.5;n_envs=128;minibatch_episodes=32;total_timesteps=524288"

``--term NAME`` tunes on one term of the member's taste alone (its satisfaction, standardised on
prior melodies) and judges by it: the cheapest test of whether a policy can take up one kind of
feature (a band on the whole melody's mean interval: 0.657 at 2.79 nats against best-of-N's 0.977;
a threshold on rests: as far as best-of-N). ``--verbose`` prints the tuner's log.

    python experiments/true_reward_tuning.py --member 2 --term mean_interval --specs rloo

A spec is a tune algorithm, optionally followed by ``:`` and ``key=value`` pairs (JSON values)
separated by ``;``. Prints one line per spec: win-rate against 1,000 prior melodies by the
member's score, KL, best-of-N at that KL, seconds, and the KL along training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


class OneTerm:
    """One term of a panel member's taste as a reward: its satisfaction (0..1), standardised on
    reference prior melodies (mean 0, standard deviation 1 there, as the member's whole score is)."""

    def __init__(self, member: int, term: str, reference) -> None:
        from rlcomposer.preferences.panel import FEATURE_NAMES, panel_listener

        if term not in FEATURE_NAMES:
            raise SystemExit(f"--term: {term!r} is not a feature of the panel ({', '.join(FEATURE_NAMES)})")
        self.listener, self.index = panel_listener(member), FEATURE_NAMES.index(term)
        values = self.satisfied(reference)
        self.mean, self.std = float(values.mean()), float(values.std()) or 1.0

    def satisfied(self, melodies) -> np.ndarray:
        """The term's satisfaction (0..1) of each melody."""
        from rlcomposer.preferences.panel import features

        return self.listener.satisfactions(features(list(melodies)))[:, self.index]

    def score_batch(self, melodies) -> np.ndarray:
        return (self.satisfied(melodies) - self.mean) / self.std


def main(argv: list[str] | None = None) -> int:
    from rlcomposer.config import config_from_dict
    from rlcomposer.preferences.listeners import load_listener
    from rlcomposer.preferences.reward_functions import score_melodies
    from rlcomposer.prior.model import load_prior
    from rlcomposer.prior.registry import PriorModel
    from rlcomposer.rl.kl import best_of_n_for_kl, kl_to_prior_per_melody
    from rlcomposer.rl.tuning import TuneConfig, tune_policy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--member", type=int, default=2, help="panel member (default 2, of the choosing half)")
    parser.add_argument("--specs", default="sequence,rloo", help="comma-separated tuner specs")
    parser.add_argument("--out", default="runs/true_reward_tuning", help="folder for the policies")
    parser.add_argument("--verbose", action="store_true", help="print the tuner's log lines")
    parser.add_argument("--term", default=None,
                        help="tune on one of the member's feature terms alone (its satisfaction, standardised on "
                             "prior melodies) and judge by it (members 0-23)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    score, name = load_listener(f"panel:{args.member}")
    prior = load_prior()
    prior_model = PriorModel(prior, "prior")
    if args.term is not None:
        score = OneTerm(args.member, args.term, prior_model.sample(2000, 64, np.random.default_rng(1)))
    rng = np.random.default_rng(0)
    base = score_melodies(score, prior_model.sample(1000, 64, rng))

    def win_rate(scores: np.ndarray) -> float:
        return float(np.mean((scores[:, None] > base[None]) + 0.5 * (scores[:, None] == base[None])))

    for spec in args.specs.split(","):
        algorithm, _, extra = spec.partition(":")
        overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in extra.split(";") if item)}
        config = config_from_dict(TuneConfig, {"algorithm": algorithm, "reward": name, "checkpoint_every": 0,
                                               "seed": 0, **overrides}, f"spec '{spec}'")
        started = time.monotonic()
        out = Path(args.out) / f"panel-{args.member}" / spec.replace(":", "_").replace(";", "_")
        result = tune_policy(config, out, score, progress=False,
                             log=(lambda line: print(line, flush=True)) if args.verbose else (lambda _: None), prior=prior)
        tuned = PriorModel(result.policy, algorithm).sample(1000, 64, rng)
        tokens = torch.as_tensor(np.stack([m.tokens for m in tuned])).long()
        kl = float(kl_to_prior_per_melody(result.policy, prior, tokens, config.env.condition).mean())
        n = best_of_n_for_kl(kl, 4096)
        rows = max(min(200, 60_000 // n), 16)
        candidates = score_melodies(score, prior_model.sample(rows * n, 64, rng)).reshape(rows, n)
        path = [round(h["kl_per_melody"], 1) for h in result.history][::8]
        print(f"panel:{args.member} {spec}: win-rate {win_rate(score_melodies(score, tuned)):.3f} at KL {kl:.2f} | "
              f"best-of-{n} {win_rate(candidates.max(axis=1)):.3f} | {time.monotonic() - started:.0f} s | "
              f"KL along training {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
