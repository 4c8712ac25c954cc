"""Sequence-PPO env-steps/s at 1 and 2 torch threads, alone and beside busy processes.

This measures the choice of ``TuneConfig.threads`` (used by ``rlcomposer tune``,
``experiment run`` and every sweep trial): for each count of busy processes
(pure-Python spin loops this script starts and stops itself, each keeping one
core busy) it times sequence-level PPO on the theory reward at 1 and at 2
threads, in the same run. The machine's load (``os.getloadavg``) is printed
first; other jobs on the machine count as busy processes too.

    python experiments/bench_threads.py [--rollouts 3] [--busy 0,1,2]

Last lines: ``threads=T busy=B: N env-steps/s``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time


def _spin(seconds: float) -> None:
    """Keep one core busy for at most ``seconds`` (bounded: it stops by itself)."""
    stop = time.monotonic() + seconds
    x = 0
    while time.monotonic() < stop:
        x += 1


def measure(threads: int, rollouts: int) -> float:
    """env-steps/s of sequence PPO (theory reward, default rollout) at ``threads`` torch threads."""
    import torch

    from rlcomposer.prior.model import load_prior
    from rlcomposer.rl.environment import THEORY_ENV_CONFIG
    from rlcomposer.rl.tuning import TuneConfig, build_model

    config = TuneConfig(env=THEORY_ENV_CONFIG, threads=threads, checkpoint_every=0)
    torch.set_num_threads(threads)
    model = build_model(config, load_prior(), reward_fn=None)
    per_rollout = config.n_envs * config.n_steps
    model.learn(per_rollout)  # warm-up: one rollout and one update
    started = time.perf_counter()
    model.learn(rollouts * per_rollout, reset_num_timesteps=False)
    return rollouts * per_rollout / (time.perf_counter() - started)


def _measure_in_child(threads: int, rollouts: int, queue) -> None:
    queue.put(measure(threads, rollouts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=3, help="timed rollouts per measurement")
    parser.add_argument("--busy", default="0,1,2", help="counts of busy processes to measure beside")
    parser.add_argument("--threads", default="1,2", help="torch thread counts to compare")
    args = parser.parse_args()
    busy_counts = [int(b) for b in args.busy.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    context = multiprocessing.get_context("spawn")
    results = {}
    for busy in busy_counts:
        for threads in thread_counts:
            spinners = [context.Process(target=_spin, args=(900.0,), daemon=True) for _ in range(busy)]
            for spinner in spinners:
                spinner.start()
            try:
                queue = context.Queue()
                child = context.Process(target=_measure_in_child, args=(threads, args.rollouts, queue))
                child.start()  # a fresh process per measurement: torch's thread pool is set once
                rate = queue.get()
                child.join()
            finally:
                for spinner in spinners:
                    spinner.terminate()
                    spinner.join()
            results[threads, busy] = rate
            print(f"threads={threads} busy={busy}: {rate:.0f} env-steps/s", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
