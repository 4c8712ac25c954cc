"""Cost per tuned melody: melodies/s of the prior, the reward model, best-of-N under it, a tuned policy.

Measured in one run, on 64-step 4/4 major melodies (``--steps``), at ``--threads`` torch threads:

* the prior, sampling only (token arrays, and the :class:`Melody` objects best-of-N draws);
* the reward model alone scoring a batch of prior melodies, with the batched descriptors
  (``describe``) and with the per-melody ones (``describe_one`` melody by melody, as before), and
  the descriptors alone both ways (``descriptor speedup``);
* best-of-N from the prior under the reward model at N = 16, 64 and 256 (tuned melodies/s), and
  best-of-64 again with the per-melody descriptors;
* a tuned policy (``--policy DIR``), sampling only, and its best of 4 and of 8 under the reward
  model (what the loop exports); without one these lines are skipped.

The reward model is ``--reward DIR``, or one trained here (default config) on ~300 comparisons
that a simulated listener (``--listener``, default ``lyrical``, default noise) answers on a pool of
prior melodies, as the loop does. Each rate is the best of ``--repeats`` runs (other jobs on the
machine only ever slow a run down), and the runs of figures compared with each other take turns,
so the load falls on each alike. ``--profile`` prints where a best-of-64 run spends its time.
Ends with ``name: value`` lines.

    python experiments/bench_tuned_sampling.py [--threads 1] [--candidates 8192] [--reward DIR] [--policy DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

import rlcomposer.preferences.ensemble as reward_model_module
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.descriptors import describe, describe_one
from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener, load_listener
from rlcomposer.preferences.reward_functions import score_melodies
from rlcomposer.preferences.reward_model import (
    PairLabel,
    RewardModelConfig,
    load_reward_model,
    train_reward_model,
)
from rlcomposer.prior.model import MelodyCondition, load_prior
from rlcomposer.prior.registry import PriorModel
from rlcomposer.rl.best_of_n import BestOfNModel, PolicyBestOfKModel

BEST_OF = (16, 64, 256)
POLICY_BEST_OF = (4, 8)
"""k of policy + best-of-k (with --policy)."""


def per_melody_describe(melodies: Sequence[Melody | np.ndarray]) -> np.ndarray:
    """The descriptors as they were computed before the batched ``describe``: melody by melody."""
    if len(melodies) == 0:
        return describe(melodies)
    result = np.stack([describe_one(m) for m in melodies])
    return np.nan_to_num(result, nan=0.0, posinf=0.0, neginf=0.0)


@contextmanager
def per_melody_descriptors() -> Iterator[None]:
    """Make the reward model use :func:`per_melody_describe`; fails if the model never called it."""
    calls = []

    def counted(melodies):
        calls.append(len(melodies))
        return per_melody_describe(melodies)

    original = reward_model_module.describe
    reward_model_module.describe = counted
    try:
        yield
    finally:
        reward_model_module.describe = original
    if not calls:
        raise RuntimeError("the reward model no longer calls rlcomposer.preferences.ensemble.describe: "
                           "point per_melody_descriptors at where it computes its descriptors")


def best_rates(runs: dict[str, tuple[int, Callable[[], object]]], repeats: int) -> dict[str, float]:
    """Items/s of each ``name: (items, run)``, the best of ``repeats`` runs; the runs take turns
    (a, b, c, a, b, c, ...) so that the machine's load falls on each alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, (_, run) in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: count / best[name] for name, (count, _) in runs.items()}


def with_per_melody_descriptors(run: Callable[[], object]) -> Callable[[], object]:
    def patched() -> object:
        with per_melody_descriptors():
            return run()
    return patched


def trained_reward_model(prior_model: PriorModel, listener_spec: str, comparisons: int, steps: int,
                         rng: np.random.Generator):
    """A reward model (default config) from ``comparisons`` answers of a simulated listener on prior melodies."""
    pool = prior_model.sample(400, steps, rng)
    function, name = load_listener(listener_spec)
    listener = SimulatedListener(function, name, ListenerNoise(), rng=rng)
    listener.calibrate(pool)
    labels = []
    for _ in range(comparisons):
        i, j = rng.choice(len(pool), 2, replace=False)
        labels.append(PairLabel(pool[i], pool[j], listener.compare(pool[i], pool[j]),
                                listener.rater_name))
    return train_reward_model(labels, [], RewardModelConfig(), prior_model.prior, log=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, the library's)")
    parser.add_argument("--steps", type=int, default=64, help="melody length in sixteenth steps")
    parser.add_argument("--candidates", type=int, default=8192,
                        help="melodies sampled (and scored) per measurement: best-of-N makes candidates/N")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--reward", help="a reward-model directory (default: train one here)")
    parser.add_argument("--listener", default="lyrical", help="the simulated listener that trains it")
    parser.add_argument("--comparisons", type=int, default=300)
    parser.add_argument("--policy", help="a tuned policy directory, to sample from too")
    parser.add_argument("--profile", action="store_true", help="print where a best-of-64 run spends its time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    prior_model = PriorModel(load_prior("prior"), "prior")
    steps, candidates, repeats = args.steps, args.candidates, args.repeats
    condition = MelodyCondition("4/4", "major", steps)
    prior_model.sample(256, steps, rng, condition=condition)  # warm-up

    started = time.perf_counter()
    if args.reward:
        reward = load_reward_model(args.reward, expected_prior=prior_model.prior)
        print(f"reward model: {args.reward} ({reward})")
    else:
        reward = trained_reward_model(prior_model, args.listener, args.comparisons, steps, rng)
        print(f"reward model: trained here in {time.perf_counter() - started:.0f} s on {args.comparisons} "
              f"comparisons of sim:{args.listener} ({reward}, {reward.config.ensemble_size} members, "
              f"held-out accuracy {reward.metrics['held_out']['accuracy']:.3f})")
    print(f"{args.threads} torch threads, {steps}-step melodies, {candidates} candidates a measurement, "
          f"best of {repeats} runs")
    figures: dict[str, float] = {}

    melodies = prior_model.sample(candidates, steps, rng, condition=condition)
    subset = melodies[:max(candidates // 8, 1)]  # the per-melody descriptors are slow: fewer melodies
    assert np.allclose(describe(subset), per_melody_describe(subset), rtol=0, atol=1e-9)
    rates = best_rates({"batched": (len(melodies), lambda: describe(melodies)),
                        "per melody": (len(subset), lambda: per_melody_describe(subset))}, repeats)
    figures["descriptor speedup"] = rates["batched"] / rates["per melody"]
    print(f"descriptors alone: {rates['batched']:.0f} melodies/s batched, {rates['per melody']:.0f}/s melody "
          f"by melody ({len(subset)} melodies): {figures['descriptor speedup']:.1f}x")

    rates = best_rates({
        "batched": (len(melodies), lambda: score_melodies(reward, melodies)),
        "per melody": (len(subset), with_per_melody_descriptors(lambda: score_melodies(reward, subset))),
    }, repeats)
    figures["reward model melodies/s"] = rates["batched"]
    figures["reward model per-melody descriptors melodies/s"] = rates["per melody"]
    new_scores = score_melodies(reward, subset)
    old_scores = with_per_melody_descriptors(lambda: score_melodies(reward, subset))()
    difference = float(np.abs(new_scores - old_scores).max())
    print(f"reward model alone, scoring a batch: {rates['batched']:.0f} melodies/s (per-melody descriptors: "
          f"{rates['per melody']:.0f}/s; largest score difference between the two: {difference:.2g})")

    generator = torch.Generator().manual_seed(args.seed)
    runs: dict[str, tuple[int, Callable[[], object]]] = {
        "prior melodies/s": (candidates, lambda: prior_model.prior.sample(candidates, steps, generator,
                                                                          condition=condition)),
        "prior Melody objects/s": (candidates, lambda: prior_model.sample(candidates, steps, rng,
                                                                          condition=condition)),
    }
    for n in BEST_OF:
        model, count = BestOfNModel(prior_model, reward, n), max(candidates // n, 1)
        runs[f"best-of-{n} melodies/s"] = (
            count, lambda model=model, count=count: model.sample(count, steps, rng, condition=condition))
    model, count = BestOfNModel(prior_model, reward, 64), max(candidates // 64, 1)
    runs["best-of-64 per-melody descriptors melodies/s"] = (
        count, with_per_melody_descriptors(lambda: model.sample(count, steps, rng, condition=condition)))
    figures.update(best_rates(runs, repeats))
    print(f"prior, sampling only: {figures['prior melodies/s']:.0f} melodies/s as token arrays, "
          f"{figures['prior Melody objects/s']:.0f}/s as Melody objects")
    sampling_cost = 1e6 / figures["prior Melody objects/s"]  # microseconds a candidate
    scoring_cost = 1e6 / figures["reward model melodies/s"]
    old_scoring_cost = 1e6 / figures["reward model per-melody descriptors melodies/s"]
    figures["reward share of a candidate cost"] = scoring_cost / (sampling_cost + scoring_cost)
    figures["per-melody reward share of a candidate cost"] = old_scoring_cost / (sampling_cost + old_scoring_cost)
    print(f"a best-of-N candidate costs {sampling_cost:.0f} us to sample and {scoring_cost:.0f} us to score "
          f"({old_scoring_cost:.0f} us with the per-melody descriptors): the reward model is "
          f"{figures['reward share of a candidate cost']:.1%} of it "
          f"({figures['per-melody reward share of a candidate cost']:.1%} before)")
    for n in BEST_OF:
        print(f"best-of-{n} (prior, reward model): {figures[f'best-of-{n} melodies/s']:.1f} tuned melodies/s "
              f"({max(candidates // n, 1) * n} candidates)")
    figures["best-of-64 speedup"] = (figures["best-of-64 melodies/s"]
                                     / figures["best-of-64 per-melody descriptors melodies/s"])
    print(f"best-of-64 with the per-melody descriptors: "
          f"{figures['best-of-64 per-melody descriptors melodies/s']:.1f} tuned melodies/s "
          f"(batched: {figures['best-of-64 speedup']:.1f}x)")
    bound = figures["prior Melody objects/s"] / 64
    figures["best-of-64 share of the sampling bound"] = figures["best-of-64 melodies/s"] / bound
    print(f"bound from the prior's sampling speed: {bound:.1f} best-of-64 melodies/s; best-of-64 makes "
          f"{figures['best-of-64 share of the sampling bound']:.2f} of it")

    if args.policy:
        policy = PriorModel(load_prior(args.policy), args.policy)
        figures.update(best_rates(
            {"tuned policy melodies/s": (candidates, lambda: policy.sample(candidates, steps, rng))}, repeats))
        print(f"tuned policy {args.policy}, sampling only: {figures['tuned policy melodies/s']:.0f} melodies/s")
        for k in POLICY_BEST_OF:  # what the loop exports: the policy's best of k, its KL recorded
            mode, count = PolicyBestOfKModel(policy.prior, prior_model.prior, reward, k), max(candidates // k, 1)
            figures.update(best_rates({f"policy + best-of-{k} melodies/s": (
                count, lambda mode=mode, count=count: mode.sample(count, steps, rng, condition=condition))}, repeats))
            ratio = figures[f"policy + best-of-{k} melodies/s"] / figures["best-of-64 melodies/s"]
            print(f"policy + best-of-{k} (reward model, the pick weighing each candidate's log pi/p by "
                  f"{mode.kl_weight:g}): "
                  f"{figures[f'policy + best-of-{k} melodies/s']:.1f} tuned melodies/s, {ratio:.1f}x best-of-64's")
    else:
        print("tuned policy: skipped (give a policy directory with --policy DIR)")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        BestOfNModel(prior_model, reward, 64).sample(count, steps, rng, condition=condition)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
        print(text.getvalue())

    for name, value in figures.items():
        if name.endswith("speedup"):
            print(f"{name}: {value:.1f}x")
        else:
            print(f"{name}: {value:.2f}" if name.endswith(("bound", "cost")) else f"{name}: {value:.1f}")


if __name__ == "__main__":
    main()
