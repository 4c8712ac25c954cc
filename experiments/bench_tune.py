"""Environment steps per second: sequence-level PPO against stock SB3 PPO, side by side.

Both use the same policy (the shipped prior as actor), the same batched env,
rollout size, minibatch size, epochs and thread count; only the algorithm
differs. Also reports the share of wall time spent outside the networks'
forward and backward passes (env logic, buffers, GAE, optimiser, SB3 overhead).
Last lines: ``speedup: N.Nx`` and ``env-steps/s: N`` (the sequence-level rate).

    python experiments/bench_tune.py [--sequence-rollouts 8] [--stock-rollouts 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch

from rlcomposer.prior.model import load_prior
from rlcomposer.rl.environment import THEORY_ENV_CONFIG
from rlcomposer.rl.tuning import TuneConfig, build_model


class NetworkTimer:
    """Accumulates wall time inside network forward and backward passes."""

    def __init__(self):
        self.forward = 0.0
        self.backward = 0.0

    def wrap(self, owner, name: str, kind: str = "forward") -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                setattr(self, kind, getattr(self, kind) + time.perf_counter() - started)

        setattr(owner, name, timed)

    @contextmanager
    def timing_backward(self):
        original = torch.autograd.backward

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.backward += time.perf_counter() - started

        torch.autograd.backward = timed
        try:
            yield
        finally:
            torch.autograd.backward = original


def run(algorithm: str, rollouts: int, threads: int) -> dict[str, float]:
    config = TuneConfig(algorithm=algorithm, env=THEORY_ENV_CONFIG, threads=threads, checkpoint_every=0)
    torch.set_num_threads(threads)
    prior = load_prior()
    model = build_model(config, prior, reward_fn=None)
    steps = rollouts * config.n_envs * config.n_steps
    timer = NetworkTimer()
    for name in ("forward", "evaluate_actions", "predict_values"):
        timer.wrap(model.policy, name)
    timer.wrap(model.env.episodes, "_advance_prior")
    model.learn(config.n_envs * config.n_steps)  # warm-up: one rollout and one update
    timer.forward = timer.backward = 0.0
    started = time.perf_counter()
    with timer.timing_backward():
        model.learn(steps, reset_num_timesteps=False)
    seconds = time.perf_counter() - started
    network = timer.forward + timer.backward
    return {"steps": steps, "seconds": seconds, "rate": steps / seconds,
            "outside_share": 1 - network / seconds, "forward": timer.forward, "backward": timer.backward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence-rollouts", type=int, default=8)
    parser.add_argument("--stock-rollouts", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config = TuneConfig()
    print(f"same settings for both: {config.n_envs} envs x {config.n_steps} steps per rollout, "
          f"minibatch {config.batch_size} transitions, {config.n_epochs} epochs, {args.threads} threads, "
          f"GRU prior as actor")
    results = {}
    for algorithm, rollouts in (("sequence", args.sequence_rollouts), ("stock", args.stock_rollouts)):
        result = run(algorithm, rollouts, args.threads)
        results[algorithm] = result
        print(f"{algorithm:>8} PPO: {result['steps']} env-steps in {result['seconds']:.1f} s = "
              f"{result['rate']:.0f} env-steps/s; network forward {result['forward']:.1f} s, "
              f"backward {result['backward']:.1f} s, outside the network {100 * result['outside_share']:.0f}%")
    print(f"speedup: {results['sequence']['rate'] / results['stock']['rate']:.1f}x")
    print(f"env-steps/s: {results['sequence']['rate']:.0f}")


if __name__ == "__main__":
    main()
