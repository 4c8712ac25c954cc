"""Distil the reward-tilted prior into a policy by importance-weighted maximum likelihood (a probe).

The policy a KL-regularised tuner aims at is the tilted prior ``p(x) exp(r(x) / beta) / Z``: with
beta set so that its KL to the prior is 3 nats, it wins against the prior about as often as
best-of-N at that KL (measured on 40,000 prior melodies; see experiments/README.md). PPO/RLOO reach
only part of its reward at that KL. This probe fits the policy to the tilt directly, as
distributional policy gradient (Khalifa et al. 2021) does: melodies are drawn from the policy
itself, weighted by ``p(x) exp(r(x) / beta_k) / pi(x)`` (self-normalised over the batch) and the
policy takes gradient steps on their weighted log-likelihood (the forward KL from the tilt). The
temperature is annealed (adaptive tempering, as in sequential Monte Carlo): each batch uses the
smallest beta_k >= beta whose weights keep an effective sample size of ``--ess`` of the batch, so
the policy walks towards the tilt through nearer ones.

    python experiments/tilt_distillation.py --member 2 [--reward-model DIR] [--kl 3] [--batches 300]

The reward is the member's own noiseless score (the optimiser alone) or, with ``--reward-model``, a
reward model's members' mean less ``--pessimism`` x their spread. Prints, every ``--every`` batches,
the policy's KL to the prior and its win-rate against 1,000 prior melodies by the member's score,
beside best-of-N's at that KL under the same reward.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from rlcomposer.music.melody import Melody
    from rlcomposer.preferences.listeners import load_listener
    from rlcomposer.preferences.reward_functions import pessimistic_scores, score_melodies
    from rlcomposer.prior.model import MelodyCondition, load_prior
    from rlcomposer.prior.registry import PriorModel
    from rlcomposer.rl.kl import best_of_n_for_kl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--member", type=int, default=2)
    parser.add_argument("--reward-model", default=None, help="a reward-model directory (default: the member's score)")
    parser.add_argument("--pessimism", type=float, default=0.0)
    parser.add_argument("--kl", type=float, default=3.0, help="KL of the tilt the policy is fitted to, nats")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--steps", type=int, default=2, help="gradient steps per batch")
    parser.add_argument("--ess", type=float, default=0.2, help="smallest effective sample share of a batch")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="save the final policy's state dict here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    score, name = load_listener(f"panel:{args.member}")
    prior = load_prior()
    prior.eval()
    steps = 64
    condition = MelodyCondition("4/4", "major", steps)
    generator = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    if args.reward_model:
        from rlcomposer.preferences.reward_model import load_reward_model

        model = load_reward_model(args.reward_model)

        def reward(melodies):
            return pessimistic_scores(model.member_scores(melodies), args.pessimism)
    else:
        def reward(melodies):
            return score_melodies(score, melodies)

    prior_model = PriorModel(prior, "prior")
    base = score_melodies(score, prior_model.sample(1000, steps, rng))  # the prior melodies judged against
    pool = prior_model.sample(40 * 1024, steps, rng)  # for best-of-N curves
    pool_reward = np.asarray(reward(pool))
    pool_true = score_melodies(score, pool)

    def win_rate(scores: np.ndarray) -> float:
        return float(np.mean((scores[:, None] > base[None]) + 0.5 * (scores[:, None] == base[None])))

    def best_of_n_win(n: int) -> float:
        groups = len(pool) // n
        r = pool_reward[:groups * n].reshape(groups, n)
        t = pool_true[:groups * n].reshape(groups, n)
        return win_rate(t[np.arange(groups), r.argmax(1)])

    def draw(model, count):
        with torch.no_grad():
            tokens = torch.as_tensor(model.sample(count, steps, generator, condition=condition)).long()
        return tokens

    def log_probs(model, tokens):
        return model.log_likelihood(tokens, condition).sum(-1)

    # beta of the tilt at --kl, on the network's own melodies (no drawn finals, as a policy samples)
    tuned = copy.deepcopy(prior)
    tuned.tuned_condition = condition.with_length(None)
    start = draw(tuned, 16384)
    start_reward = np.asarray(reward([Melody(row) for row in start.numpy()]))

    def tilt(r: np.ndarray, beta: float) -> np.ndarray:
        w = np.exp((r - r.max()) / beta)
        return w / w.sum()

    lo, hi = 1e-3, 1e3
    for _ in range(80):
        beta = (lo * hi) ** 0.5
        w = tilt(start_reward, beta)
        kl = float((w * np.log(w * len(w) + 1e-300)).sum())
        lo, hi = (beta, hi) if kl > args.kl else (lo, beta)
    print(f"{name}: tilt beta {beta:.4f} (KL {kl:.2f} on 16,384 of the network's melodies, effective sample "
          f"{1 / (tilt(start_reward, beta) ** 2).sum():.0f})", flush=True)

    policy = tuned
    policy.train()
    optimiser = torch.optim.Adam(policy.parameters(), lr=args.lr)
    started = time.monotonic()
    for batch_index in range(1, args.batches + 1):
        policy.eval()
        tokens = draw(policy, args.batch)
        melodies = [Melody(row) for row in tokens.numpy()]
        r = np.asarray(reward(melodies))
        with torch.no_grad():
            log_ratio = (log_probs(prior, tokens) - log_probs(policy, tokens)).double().numpy()
        # the smallest beta_k >= beta keeping the effective sample share at --ess
        def weights(b: float, r=r, log_ratio=log_ratio) -> np.ndarray:
            z = r / b + log_ratio
            w = np.exp(z - z.max())
            return w / w.sum()

        b_lo, b_hi = beta, beta
        if 1 / (weights(beta) ** 2).sum() < args.ess * args.batch:
            b_hi = beta
            while 1 / (weights(b_hi) ** 2).sum() < args.ess * args.batch and b_hi < 1e6:
                b_hi *= 2
            b_lo = b_hi / 2 if b_hi > beta else beta
            for _ in range(30):
                mid = (b_lo * b_hi) ** 0.5
                if 1 / (weights(mid) ** 2).sum() < args.ess * args.batch:
                    b_lo = mid
                else:
                    b_hi = mid
        beta_k = max(b_hi, beta)
        w = torch.as_tensor(weights(beta_k), dtype=torch.float32)
        policy.train()
        for _ in range(args.steps):
            optimiser.zero_grad()
            loss = -(w * log_probs(policy, tokens)).sum() / steps
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimiser.step()
        if batch_index % args.every == 0 or batch_index == args.batches:
            policy.eval()
            check = draw(policy, 1000)
            with torch.no_grad():
                kl = float((log_probs(policy, check) - log_probs(prior, check)).mean())
            true = score_melodies(score, [Melody(row) for row in check.numpy()])
            n = best_of_n_for_kl(max(kl, 0.0))
            print(f"batch {batch_index}: beta_k {beta_k:.3f} (beta {beta:.3f}), reward {r.mean():.3f}, KL {kl:.2f}, "
                  f"win-rate {win_rate(true):.3f}, best-of-{n} at that KL {best_of_n_win(n):.3f} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    if args.save:
        torch.save(policy.state_dict(), args.save)
    shown = [Melody(row) for row in draw(policy, 3).numpy()]
    from rlcomposer.music.note_list import note_list

    for melody in shown:
        print("  ", note_list(melody))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
