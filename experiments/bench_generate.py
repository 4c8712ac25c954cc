"""Sampling throughput of 64-step melodies of mixed metres from the shipped prior, on the CPU.

The melodies are spread evenly over every metre the prior knows (4/4, 2/4, ...,
6/8, 9/8, 12/8), each 64 steps long, mixed within each batch (one condition per
melody). Side by side:
sampling that carries the GRU state step by step (what the library does) and
sampling that re-reads the whole history at every step (what a model without a
state cache would do). Last line: ``melodies/s: N`` (the library's rate).

    python experiments/bench_generate.py [--melodies 8192] [--batch-size 2048] [--threads 1] [--model prior]   (2 threads on a quiet machine)
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from rlcomposer.prior.model import MelodyCondition, load_prior


@torch.inference_mode()
def sample_rereading_history(prior, num_melodies: int, num_steps: int, generator) -> torch.Tensor:
    tokens = torch.full((num_melodies, 1), prior.config.bos_token, dtype=torch.long)
    for _ in range(num_steps):
        logits, _ = prior(tokens)
        choice = torch.multinomial(F.softmax(logits[:, -1], dim=-1), 1, generator=generator)
        tokens = torch.cat([tokens, choice], dim=1)
    return tokens[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodies", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="prior", help="a prior directory (default: the shipped one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    num_steps = args.steps
    prior = load_prior(args.model)
    metres = prior.config.metres or ("4/4",)
    generator = torch.Generator().manual_seed(0)
    prior.sample(256, num_steps, generator)  # warm-up

    started = time.perf_counter()
    sample_rereading_history(prior, 512, num_steps, generator)
    reread_rate = 512 / (time.perf_counter() - started)

    per_metre = args.melodies // len(metres)
    conditions = [MelodyCondition(metres[i % len(metres)]) for i in range(per_metre * len(metres))]
    started = time.perf_counter()
    tokens = prior.sample(len(conditions), num_steps, generator, batch_size=args.batch_size,
                          condition=conditions)
    assert tokens.shape == (len(conditions), num_steps)
    rate = len(conditions) / (time.perf_counter() - started)
    print(f"prior: GRU {prior.config.num_layers}x{prior.config.hidden_size}, "
          f"{prior.num_parameters()} parameters, {args.threads} threads, "
          f"{len(metres)} metres x {per_metre} melodies of {num_steps} steps")
    print(f"re-reading the history each step (512 melodies): {reread_rate:.0f} melodies/s")
    print(f"carrying the state ({per_metre * len(metres)} melodies, batch {args.batch_size}): "
          f"{rate:.0f} melodies/s")
    print(f"state carrying speedup: {rate / reread_rate:.1f}x")
    print(f"melodies/s: {rate:.0f}")


if __name__ == "__main__":
    main()
