"""Sampling throughput of 64-step melodies from the shipped prior, batched, on the CPU.

Side by side: sampling that carries the GRU state step by step (what the library
does) and sampling that re-reads the whole history at every step (what a model
without a state cache would do). Last line: ``melodies/s: N`` (the library's rate).

    python experiments/bench_generate.py [--melodies 8192] [--batch-size 2048] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from rlcomposer.music.melody import STEPS_PER_BAR
from rlcomposer.prior.model import load_prior


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
    parser.add_argument("--bars", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    num_steps = args.bars * STEPS_PER_BAR
    prior = load_prior()
    generator = torch.Generator().manual_seed(0)
    prior.sample(256, num_steps, generator)  # warm-up

    started = time.perf_counter()
    sample_rereading_history(prior, 512, num_steps, generator)
    reread_rate = 512 / (time.perf_counter() - started)

    started = time.perf_counter()
    tokens = prior.sample(args.melodies, num_steps, generator, batch_size=args.batch_size)
    rate = args.melodies / (time.perf_counter() - started)
    assert tokens.shape == (args.melodies, num_steps)
    print(f"prior: GRU {prior.config.num_layers}x{prior.config.hidden_size}, "
          f"{prior.num_parameters()} parameters, {args.threads} threads")
    print(f"re-reading the history each step (512 melodies): {reread_rate:.0f} melodies/s")
    print(f"carrying the state ({args.melodies} melodies, batch {args.batch_size}): {rate:.0f} melodies/s")
    print(f"state carrying speedup: {rate / reread_rate:.1f}x")
    print(f"melodies/s: {rate:.0f}")


if __name__ == "__main__":
    main()
