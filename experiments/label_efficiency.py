"""Label efficiency of the reward model: random vs active selection.

For each built-in listener, labels are collected through the rating store (as
``rlcomposer ratings simulate`` does) on a pool of prior melodies, in batches up
to each budget (default 100 / 200 / 300 comparisons, default noise), and a
reward model is trained after each batch. Strategies:

* ``random``: uniformly random unseen pairs;
* ``active``: the first batch random (a cold start needs a model), each later
  batch chosen by :class:`~rlcomposer.feedback.selection.ActiveSelection` with
  the reward model trained on the labels so far.

Each reward model is scored on a fixed test set of random pairs of *fresh* prior
melodies (not in the pool): accuracy against the listener's noisy answers and
against its noiseless preference (pairs inside the tie band left out), beside
the model's own held-out accuracy (20% of its labels, split by comparison).

    .venv/bin/python experiments/label_efficiency.py            # the table (a few minutes)
    .venv/bin/python experiments/label_efficiency.py --json results.json

Ends with ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlcomposer.feedback.selection import ActiveSelection
from rlcomposer.feedback.simulated_raters import simulate_ratings
from rlcomposer.feedback.store import open_store
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.listeners import (
    BUILTIN_LISTENERS,
    ListenerNoise,
    SimulatedListener,
)
from rlcomposer.preferences.reward_model import (
    RewardModelConfig,
    load_training_data,
    train_reward_model,
)
from rlcomposer.prior.model import SHIPPED_PRIOR_DIR, load_prior


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", default=",".join(BUILTIN_LISTENERS))
    parser.add_argument("--budgets", default="100,200,300")
    parser.add_argument("--strategies", default="random,active")
    parser.add_argument("--pool", type=int, default=1000, help="pool melodies from the prior")
    parser.add_argument("--test-melodies", type=int, default=500, help="fresh prior melodies for the test pairs")
    parser.add_argument("--test-pairs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior", default=str(SHIPPED_PRIOR_DIR))
    parser.add_argument("--workdir", default=None, help="folder for the SQLite files (default: temporary)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    listeners = [n.strip() for n in args.listeners.split(",")]
    strategies = [s.strip() for s in args.strategies.split(",")]
    started = time.monotonic()

    prior = load_prior(args.prior)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"sampling {args.pool} pool + {args.test_melodies} test melodies from {args.prior}", flush=True)
    tokens = prior.sample(args.pool + args.test_melodies, 64, generator)
    pool = [Melody(row, {"model": "prior", "index": i}) for i, row in enumerate(tokens[:args.pool])]
    test = [Melody(row) for row in tokens[args.pool:]]
    rng = np.random.default_rng(args.seed + 1)
    test_a = rng.integers(0, len(test), args.test_pairs)
    test_b = (test_a + rng.integers(1, len(test), args.test_pairs)) % len(test)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="label-efficiency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = RewardModelConfig(prior=args.prior, seed=args.seed)
    rows = []
    for name in listeners:
        function = BUILTIN_LISTENERS[name]
        reference = SimulatedListener(function, name, ListenerNoise(), rng=np.random.default_rng(args.seed))
        reference.calibrate(pool)
        truth = reference.scores(test)
        delta = truth[test_a] - truth[test_b]
        decided = np.abs(delta) >= reference.noise.tie_band * reference.spread
        noisy = np.array([{"a": 1.0, "b": 0.0, "tie": 0.5}[reference.answer_from_scores(truth[a], truth[b])]
                          for a, b in zip(test_a, test_b, strict=False)])
        listener_agreement = float(np.mean((noisy[decided] == 1.0) == (delta[decided] > 0)))
        for strategy_name in strategies:
            db = workdir / f"{name}-{strategy_name}-{args.seed}.sqlite3"
            db.unlink(missing_ok=True)
            store = open_store(f"sqlite:///{db}")
            store.add_melodies(pool, "round0", model="prior")
            listener = SimulatedListener(function, name, ListenerNoise(),
                                         rng=np.random.default_rng(args.seed + 7))
            listener.calibrate(pool)
            ensemble = None
            have = 0
            for budget in budgets:
                strategy = None
                if strategy_name == "active" and ensemble is not None:
                    strategy = ActiveSelection(ensemble, candidate_pairs=256,
                                               rng=np.random.default_rng(args.seed + budget), tags=("round0",))
                simulate_ratings(store, listener, pairs=budget - have, tag="round0", strategy=strategy,
                                 rng=np.random.default_rng(args.seed + budget))
                have = budget
                data = load_training_data(store, tag="round0")
                ensemble = train_reward_model(data.comparisons, data.stars, config, prior, log=None)
                scores = ensemble.score_batch(test)
                predicted = scores[test_a] - scores[test_b]
                noisy_decided = noisy != 0.5
                row = {
                    "listener": name, "strategy": strategy_name, "labels": budget,
                    "held_out_accuracy": ensemble.metrics["held_out"]["accuracy"],
                    "held_out_ece": ensemble.metrics["held_out"]["ece"],
                    "test_vs_noisy": float(np.mean((predicted[noisy_decided] > 0) == (noisy[noisy_decided] == 1))),
                    "test_vs_noiseless": float(np.mean((predicted[decided] > 0) == (delta[decided] > 0))),
                    "listener_noisy_vs_noiseless": listener_agreement,
                    "seconds": ensemble.metrics["seconds"],
                }
                rows.append(row)
                print(f"{name:12s} {strategy_name:7s} {budget:4d} labels: held-out {row['held_out_accuracy']:.3f}  "
                      f"test noisy {row['test_vs_noisy']:.3f}  test noiseless {row['test_vs_noiseless']:.3f}  "
                      f"({row['seconds']:.1f}s)", flush=True)

    print()
    print("| listener | strategy | labels | held-out acc (own noisy labels) | test acc vs noisy labels "
          "| test acc vs noiseless preference |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['listener']} | {row['strategy']} | {row['labels']} | {row['held_out_accuracy']:.3f} "
              f"| {row['test_vs_noisy']:.3f} | {row['test_vs_noiseless']:.3f} |")
    print()
    ceilings = {r["listener"]: r["listener_noisy_vs_noiseless"] for r in rows}
    for name, value in ceilings.items():
        print(f"(the listener's own noisy answers agree with its noiseless preference on {value:.3f} "
              f"of the test pairs: {name})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    top = max(budgets)
    for strategy_name in strategies:
        chosen = [r["test_vs_noiseless"] for r in rows if r["strategy"] == strategy_name and r["labels"] == top]
        if chosen:
            print(f"noiseless_accuracy_{strategy_name}_{top}: {np.mean(chosen):.3f}")
    print(f"seconds: {time.monotonic() - started:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
