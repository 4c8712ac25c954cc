"""Reward-model calibration and accuracy: the first configuration against today's, side by side.

For each listener (by default members of the panel's choosing half,
``CHOOSE_MEMBERS`` of :mod:`rlcomposer.preferences.panel`; never its reporting
half), 300 noisy comparisons of random pairs of prior melodies (the
:class:`~rlcomposer.preferences.listeners.ListenerNoise` defaults: temperature
0.5, 10% mistakes, tie band 0.05) train two reward models with the same seed:

* ``before``: :data:`~rlcomposer.preferences.reward_model.LEGACY_CONFIG`, the
  first reward model's settings (K=3, 60 fixed epochs, GRU summary only, no
  calibration), evaluated by the same k-fold cross-validation;
* ``after``: :class:`~rlcomposer.preferences.reward_model.RewardModelConfig`'s
  defaults (or ``--after key=value ...``).

Both are measured on the same folds of the same comparisons: held-out accuracy
(95% Wilson interval), log-loss, Brier score and ECE (10 fixed bins; 95%
bootstrap interval over comparisons), and, for the model trained as each
configuration trains it (``before`` holds out 20% as it always did; ``after``
trains on all 300), accuracy against the listener's *noiseless* preference on
1,000 pairs of fresh prior melodies (pairs inside the tie band left out).
Reliability plots (before/after) go under ``--out``. The differences
after - before get paired bootstrap intervals over the pooled comparisons.

    .venv/bin/python experiments/reward_calibration.py            # 6 panel members (a few minutes)
    .venv/bin/python experiments/reward_calibration.py --listeners lyrical,rhythmic,adventurous

Ends with ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rlcomposer.config import config_from_dict, config_to_dict, parse_overrides
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener, load_listener
from rlcomposer.preferences.reward_model import (
    LEGACY_CONFIG,
    PairLabel,
    RewardModelConfig,
    evaluate_pairs,
    plot_reliability,
    train_reward_model,
)
from rlcomposer.prior.model import load_prior
from rlcomposer.prior.registry import PriorModel

DEFAULT_LISTENERS = "panel:0,panel:2,panel:4,panel:6,panel:8,panel:10"
METRICS = ("accuracy", "log_loss", "brier", "ece")


def resolve_listener(spec: str):
    """A listener function and its name: ``panel:K`` (choosing half only) or what load_listener takes."""
    if spec.startswith("panel:"):
        from rlcomposer.preferences.panel import CHOOSE_MEMBERS, panel_listener

        k = int(spec.split(":", 1)[1])
        if k not in CHOOSE_MEMBERS:
            raise SystemExit(f"{spec} is in the panel's reporting half: choose settings on "
                             f"CHOOSE_MEMBERS ({', '.join(map(str, CHOOSE_MEMBERS))}) only")
        function = panel_listener(k)
        return function, spec
    return load_listener(spec)


def listener_scores(function, melodies: list[Melody]) -> np.ndarray:
    batch = getattr(function, "score_batch", None)
    if callable(batch):
        return np.asarray(batch(melodies), dtype=np.float64)
    return np.array([function(m) for m in melodies], dtype=np.float64)


def calibrated_listener(spec: str, pool: list[Melody], seed: int, index: int):
    """The ``index``-th listener of a run as a :class:`SimulatedListener` (default noise) calibrated on
    ``pool``, with its noiseless function."""
    function, name = resolve_listener(spec)
    listener = SimulatedListener(function, name, ListenerNoise(), rng=np.random.default_rng([seed, index]))
    listener.calibrate(pool)
    return listener, function


def noisy_pairs(listener: SimulatedListener, function, pool: list[Melody], count: int, seed: int,
                index: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``count`` random pairs ``(a, b)`` of pool indices (never a melody with itself) and the listener's
    noisy answer to each."""
    scores = listener_scores(function, pool)
    pair_rng = np.random.default_rng([seed, index, 1])
    a = pair_rng.integers(0, len(pool), count)
    b = (a + pair_rng.integers(1, len(pool), count)) % len(pool)
    return a, b, [listener.answer_from_scores(scores[i], scores[j]) for i, j in zip(a, b, strict=True)]


def noiseless_truth(listener: SimulatedListener, function, test: list[Melody]) -> tuple[np.ndarray, np.ndarray]:
    """The listener's noiseless score differences of the test pairs (melodies side by side) and which of
    them lie outside its tie band."""
    truth = listener_scores(function, test)
    delta = truth[0::2] - truth[1::2]
    return delta, np.abs(delta) >= listener.noise.tie_band * listener.spread


def make_config(base: RewardModelConfig, overrides: list[str], prior: str, seed: int) -> RewardModelConfig:
    values = {**config_to_dict(base), **parse_overrides(overrides), "prior": prior, "seed": seed}
    return config_from_dict(RewardModelConfig, values, "--before/--after")


def paired_difference(before: np.ndarray, after: np.ndarray, targets: np.ndarray, metric: str,
                      rng: np.random.Generator, resamples: int = 1000, groups: np.ndarray | None = None
                      ) -> tuple[float, float, float]:
    """after - before of ``metric`` on the same comparisons, with a 95% paired bootstrap interval
    (resampling comparisons within each group, e.g. listener, and averaging the groups)."""
    groups = np.zeros(len(targets), dtype=int) if groups is None else groups

    def value(index: np.ndarray) -> float:
        values = []
        for g in np.unique(groups[index]):
            chosen = index[groups[index] == g]
            b = evaluate_pairs(before[chosen], targets[chosen], intervals=False)[metric]
            a = evaluate_pairs(after[chosen], targets[chosen], intervals=False)[metric]
            values.append(a - b)
        return float(np.mean(values))

    full = np.arange(len(targets))
    point = value(full)
    by_group = [full[groups == g] for g in np.unique(groups)]
    draws = []
    for _ in range(resamples):
        index = np.concatenate([rng.choice(members, members.size) for members in by_group])
        draws.append(value(index))
    low, high = np.quantile(draws, [0.025, 0.975])
    return point, float(low), float(high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", default=DEFAULT_LISTENERS,
                        help="panel:K of the choosing half, or built-in names / package.module:function")
    parser.add_argument("--labels", type=int, default=300, help="noisy comparisons per listener")
    parser.add_argument("--pool", type=int, default=1000, help="prior melodies the pairs are drawn from")
    parser.add_argument("--test-pairs", type=int, default=1000, help="pairs of fresh prior melodies")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds for both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior", default="prior")
    parser.add_argument("--before", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the first configuration (LEGACY_CONFIG)")
    parser.add_argument("--after", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of today's defaults (RewardModelConfig())")
    parser.add_argument("--out", default="runs/reward_calibration", help="folder for the plots and results.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    before_config = make_config(LEGACY_CONFIG, args.before, args.prior, args.seed)
    after_config = make_config(RewardModelConfig(), args.after, args.prior, args.seed)
    configs = {"before": before_config, "after": after_config}

    prior = load_prior(args.prior)
    sampler = PriorModel(prior, "prior")
    rng = np.random.default_rng(args.seed)
    print(f"sampling {args.pool} pool + {2 * args.test_pairs} test melodies from {args.prior}", flush=True)
    pool = sampler.sample(args.pool, 64, rng)
    test = sampler.sample(2 * args.test_pairs, 64, rng)
    print("before: " + ", ".join(f"{k}={v}" for k, v in config_to_dict(before_config).items()
                                 if k not in ("prior", "seed")))
    print("after:  " + ", ".join(f"{k}={v}" for k, v in config_to_dict(after_config).items()
                                 if k not in ("prior", "seed")))
    listeners = [s.strip() for s in args.listeners.split(",") if s.strip()]
    rows = []
    pooled = {"before": [], "after": [], "targets": [], "group": []}
    for g, spec in enumerate(listeners):
        listener, function = calibrated_listener(spec, pool, args.seed, g)
        name = listener.name
        a, b, choices = noisy_pairs(listener, function, pool, args.labels, args.seed, g)
        labels = [PairLabel(pool[i], pool[j], c, listener.rater_name) for i, j, c in zip(a, b, choices, strict=True)]
        delta, decided = noiseless_truth(listener, function, test)
        row: dict = {"listener": name, "choices": {c: sum(x.choice == c for x in labels) for c in ("a", "b", "tie")}}
        predictions = {}
        for label, config in configs.items():
            evaluated = train_reward_model(labels, [], dataclasses.replace(config, cv_folds=args.folds), prior,
                                           log=None)
            # the model as this configuration trains it (the first one held out 20%)
            model = evaluated if config.cv_folds == args.folds else train_reward_model(labels, [], config, prior,
                                                                                      log=None)
            scores = model.score_batch(test)
            predicted = scores[0::2] - scores[1::2]
            held = evaluated.metrics["held_out"]
            predictions[label] = evaluated.held_out_predictions
            row[label] = {
                **{m: held[m] for m in METRICS},
                "accuracy_ci95": held["accuracy_ci95"], "ece_ci95": held["ece_ci95"],
                "log_loss_ci95": held["log_loss_ci95"],
                "train_accuracy": evaluated.metrics["train"]["accuracy"],
                "epoch": evaluated.metrics["selection"]["epoch"],
                "temperature": evaluated.metrics["selection"]["temperature"],
                "noiseless_accuracy": float(np.mean((predicted[decided] > 0) == (delta[decided] > 0))),
                "seconds": evaluated.metrics["seconds"], "held_out": held,
            }
        assert np.array_equal(predictions["before"]["comparisons"], predictions["after"]["comparisons"])
        pooled["before"].append(predictions["before"]["probabilities"])
        pooled["after"].append(predictions["after"]["probabilities"])
        pooled["targets"].append(predictions["after"]["targets"])
        pooled["group"].append(np.full(len(labels), g))
        plot_reliability({"before": row["before"]["held_out"], "after": row["after"]["held_out"]},
                         out / f"reliability-{name.replace(':', '-')}.png",
                         f"{name}: {args.labels} noisy comparisons, {args.folds}-fold held out")
        rows.append(row)
        for label in configs:
            r = row[label]
            print(f"{name:12s} {label:6s} acc {r['accuracy']:.3f} [{r['accuracy_ci95'][0]:.3f}, "
                  f"{r['accuracy_ci95'][1]:.3f}]  log-loss {r['log_loss']:.3f}  Brier {r['brier']:.3f}  "
                  f"ECE {r['ece']:.3f} [{r['ece_ci95'][0]:.3f}, {r['ece_ci95'][1]:.3f}]  "
                  f"noiseless {r['noiseless_accuracy']:.3f}  (train acc {r['train_accuracy']:.3f}, "
                  f"epoch {r['epoch']}, T {r['temperature']:.2f}, {r['seconds']:.1f}s)", flush=True)

    print()
    print("| listener | model | held-out acc [95% CI] | log-loss | Brier | ECE [95% CI] | noiseless acc |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        for label in configs:
            r = row[label]
            print(f"| {row['listener']} | {label} | {r['accuracy']:.3f} [{r['accuracy_ci95'][0]:.3f}, "
                  f"{r['accuracy_ci95'][1]:.3f}] | {r['log_loss']:.3f} | {r['brier']:.3f} | {r['ece']:.3f} "
                  f"[{r['ece_ci95'][0]:.3f}, {r['ece_ci95'][1]:.3f}] | {r['noiseless_accuracy']:.3f} |")
    before_p, after_p = np.concatenate(pooled["before"]), np.concatenate(pooled["after"])
    targets, groups = np.concatenate(pooled["targets"]), np.concatenate(pooled["group"])
    pooled_metrics = {label: evaluate_pairs(p, targets) for label, p in (("before", before_p), ("after", after_p))}
    plot_reliability(pooled_metrics, out / "reliability-pooled.png",
                     f"{len(rows)} listeners pooled: {len(targets)} held-out comparisons")
    boot = np.random.default_rng(args.seed + 99)
    differences = {m: paired_difference(before_p, after_p, targets, m, boot, groups=groups) for m in METRICS}
    for label in configs:
        r = pooled_metrics[label]
        print(f"| pooled | {label} | {r['accuracy']:.3f} [{r['accuracy_ci95'][0]:.3f}, {r['accuracy_ci95'][1]:.3f}]"
              f" | {r['log_loss']:.3f} | {r['brier']:.3f} | {r['ece']:.3f} [{r['ece_ci95'][0]:.3f}, "
              f"{r['ece_ci95'][1]:.3f}] | |")
    print()
    print("after - before, mean over listeners (95% paired bootstrap over comparisons within listeners):")
    for metric, (point, low, high) in differences.items():
        print(f"  {metric}: {point:+.3f} [{low:+.3f}, {high:+.3f}]")
    noiseless = {label: [row[label]["noiseless_accuracy"] for row in rows] for label in configs}
    gains = np.array(noiseless["after"]) - np.array(noiseless["before"])
    print(f"  noiseless accuracy: {gains.mean():+.3f} (listeners better: {int((gains > 0).sum())}/{len(gains)})")
    results = {"listeners": listeners, "configs": {k: config_to_dict(v) for k, v in configs.items()},
               "rows": [{k: ({kk: vv for kk, vv in v.items() if kk != "held_out"} if isinstance(v, dict) else v)
                         for k, v in row.items()} for row in rows],
               "pooled": pooled_metrics, "differences": differences}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"plots and results.json in {out}")
    print()
    mean = {label: {m: float(np.mean([row[label][m] for row in rows])) for m in METRICS} for label in configs}
    for metric in ("accuracy", "log_loss", "brier", "ece"):
        name = "held-out accuracy" if metric == "accuracy" else metric.replace("_", "-")
        print(f"{name} before: {mean['before'][metric]:.3f}")
        print(f"{name} after: {mean['after'][metric]:.3f}")
    print(f"noiseless accuracy before: {np.mean(noiseless['before']):.3f}")
    print(f"noiseless accuracy after: {np.mean(noiseless['after']):.3f}")
    print(f"ece difference ci95: [{differences['ece'][1]:+.3f}, {differences['ece'][2]:+.3f}]")
    print(f"seconds: {time.monotonic() - started:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
