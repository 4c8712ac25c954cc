"""Where a tuned policy moves its melodies, beside best-of-N at the same KL (issue 20).

For a policy tuned against a panel member's own taste (``experiments/true_reward_tuning.py``) or a
reward model, this samples ``--n`` melodies from the prior, from the policy, and best-of-N from the
prior under the member's noiseless score with N at the policy's KL, and prints each melody
descriptor's mean shift from the prior in prior standard deviations: what best-of-N changes to
please the member, and how far the policy got along each of those, and what the policy changes
that best-of-N leaves alone (KL spent on nothing the taste asks for). Then the member's own terms:
for each of its heaviest features, the mean satisfaction (0..1) on the prior's, best-of-N's and the
policy's melodies and on the policy's worse half, beside its kind (a band around an ideal, or a
one-sided threshold): which parts of the taste the policy meets and which it leaves where the
prior is.

    python experiments/policy_features.py runs/true_reward_tuning/panel-2/rloo --member 2
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from rlcomposer.preferences.descriptors import DESCRIPTOR_NAMES, describe
    from rlcomposer.preferences.listeners import load_listener
    from rlcomposer.preferences.panel import FEATURE_NAMES, PanelListener, features, panel_listener
    from rlcomposer.preferences.reward_functions import score_melodies
    from rlcomposer.preferences.taste_shapes import KIND_NAMES
    from rlcomposer.prior.model import MelodyCondition, load_prior
    from rlcomposer.prior.registry import PriorModel
    from rlcomposer.rl.kl import best_of_n_for_kl, kl_to_prior_per_melody

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a tuned policy's folder (its model.pt)")
    parser.add_argument("--member", type=int, required=True, help="panel member whose noiseless score picks best-of-N")
    parser.add_argument("--n", type=int, default=600, help="melodies of each (default 600)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--top", type=int, default=14, help="descriptors shown (default 14)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    score, _ = load_listener(f"panel:{args.member}")
    prior, policy = load_prior(), load_prior(args.policy)
    steps, condition = 64, MelodyCondition("4/4", "major", 64)
    prior_melodies = PriorModel(prior, "prior").sample(args.n, steps, rng)
    policy_melodies = PriorModel(policy, "policy").sample(args.n, steps, rng)
    tokens = torch.as_tensor(np.stack([m.tokens for m in policy_melodies])).long()
    kl = float(kl_to_prior_per_melody(policy, prior, tokens, condition).mean())
    n = best_of_n_for_kl(kl, 4096)
    candidates = PriorModel(prior, "prior").sample(args.n * n, steps, rng)
    scores = score_melodies(score, candidates).reshape(args.n, n)
    best = [candidates[i * n + int(j)] for i, j in enumerate(scores.argmax(axis=1))]

    base = describe(prior_melodies)
    spread = base.std(axis=0)
    spread[spread == 0] = 1.0

    def shift(melodies) -> np.ndarray:
        return (describe(melodies).mean(axis=0) - base.mean(axis=0)) / spread

    bon, pol = shift(best), shift(policy_melodies)
    prior_scores = score_melodies(score, prior_melodies)
    policy_scores = score_melodies(score, policy_melodies)
    reference = np.sort(prior_scores)

    def win_rate(values: np.ndarray) -> float:
        return float(np.mean(np.searchsorted(reference, values, side="left") / len(reference)))

    print(f"policy KL {kl:.2f} nats; best-of-{n} at that KL. Win-rate against the prior by panel:{args.member}: "
          f"policy {win_rate(policy_scores):.3f}, best-of-{n} {win_rate(scores.max(axis=1)):.3f}")
    print(f"Shift in |mean| over all {len(DESCRIPTOR_NAMES)} descriptors (prior sd): best-of-N "
          f"{np.abs(bon).mean():.3f}, policy {np.abs(pol).mean():.3f}; their correlation {np.corrcoef(bon, pol)[0, 1]:.2f}; "
          f"the policy's shift along best-of-N's direction {float(pol @ bon / (bon @ bon)):.2f} of it")
    print("\n| descriptor | best-of-N shift (sd) | policy shift (sd) | policy / best-of-N |")
    print("|---|---:|---:|---:|")
    for index in np.argsort(-np.abs(bon))[:args.top]:
        ratio = pol[index] / bon[index] if abs(bon[index]) > 1e-9 else float("nan")
        print(f"| {DESCRIPTOR_NAMES[index]} | {bon[index]:+.2f} | {pol[index]:+.2f} | {ratio:.2f} |")
    print("\nWhere the policy moves most beyond best-of-N (|policy − best-of-N|):")
    print("| descriptor | best-of-N shift (sd) | policy shift (sd) |")
    print("|---|---:|---:|")
    for index in np.argsort(-np.abs(pol - bon))[:6]:
        print(f"| {DESCRIPTOR_NAMES[index]} | {bon[index]:+.2f} | {pol[index]:+.2f} |")
    member = panel_listener(args.member)
    if isinstance(member, PanelListener):  # members 0-23 (24-35 hear the metre, by other features)
        worse = policy_scores < np.median(policy_scores)
        columns = {name: member.satisfactions(features(melodies))
                   for name, melodies in (("prior", prior_melodies), ("best-of-N", best), ("policy", policy_melodies))}
        columns["policy's worse half"] = columns["policy"][worse]
        print(f"\npanel:{args.member}'s own terms (weight ≥ 0.05, and its interactions): mean satisfaction, 0..1")
        print("| feature | weight | kind | " + " | ".join(columns) + " |")
        print("|---|---:|---|" + "---:|" * len(columns))
        for index in np.argsort(-member.weights):
            if member.weights[index] < 0.05:
                break
            cells = " | ".join(f"{values[:, index].mean():.2f}" for values in columns.values())
            print(f"| {FEATURE_NAMES[index]} | {member.weights[index]:.2f} | {KIND_NAMES[int(member.kinds[index])]} | {cells} |")
        for number, (interaction, meaning) in enumerate(zip(member.interactions, member.interaction_names, strict=True)):
            cells = " | ".join(f"{values[:, len(FEATURE_NAMES) + number].mean():.2f}" for values in columns.values())
            print(f"| {meaning} | {interaction[-1]:.2f} | both | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
