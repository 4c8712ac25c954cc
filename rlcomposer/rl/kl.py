"""KL(policy‖prior) per melody: exact for a policy, closed form for best-of-N.

Both sides of every equal-KL comparison use these two functions.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from rlcomposer.prior.model import MelodyCondition, MelodyPrior


@torch.inference_mode()
def kl_to_prior_per_melody(policy_actor: MelodyPrior, prior: MelodyPrior, tokens: torch.Tensor,
                           condition: MelodyCondition | None = None) -> torch.Tensor:
    """Exact Σ_t KL(policy(·|s_t) || prior(·|s_t)) along each melody, shape ``[N]``
    (both told ``condition``: the melodies' metre and mode, default 4/4 major)."""
    return kl_to_prior_per_step(policy_actor, prior, tokens, condition).sum(dim=-1)


def kl_to_prior_per_step(policy_actor: MelodyPrior, prior: MelodyPrior, tokens: torch.Tensor,
                         condition: MelodyCondition | None = None) -> torch.Tensor:
    """Exact KL(policy(·|s_t) || prior(·|s_t)) at each step of each melody, shape ``[N, T]``."""
    return kl_between_logits(policy_actor.sequence_logits(tokens, condition),
                             prior.sequence_logits(tokens, condition))


def kl_between_logits(policy_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(policy_logits) || softmax(prior_logits)) over the last axis."""
    policy_log = F.log_softmax(policy_logits, dim=-1)
    prior_log = F.log_softmax(prior_logits, dim=-1)
    return (policy_log.exp() * (policy_log - prior_log)).sum(dim=-1)


def best_of_n_kl(n: int) -> float:
    """KL of best-of-N sampling from its base model, ``log N - (N - 1) / N`` nats per melody.

    (Stiennon et al. 2020; an upper bound that is tight for continuous rewards.)
    """
    return float(math.log(n) - (n - 1) / n)


def best_of_n_for_kl(kl: float, cap: int = 1024) -> int:
    """Smallest N whose best-of-N KL (:func:`best_of_n_kl`) reaches ``kl`` nats (at most ``cap``)."""
    n = 1
    while n < cap and best_of_n_kl(n) < kl:
        n += 1
    return n


def policy_best_of_k_kl(mean_log_ratio: float, k: int) -> float:
    """KL to the prior of best-of-k sampling from a tuned policy, per melody (an estimate).

    The policy's own KL to the prior on the chosen melodies (their mean Σ_t log π/p,
    ``mean_log_ratio``) plus best-of-k's KL from the policy, ``log k − (k − 1)/k``.
    """
    return float(mean_log_ratio + best_of_n_kl(k))


@torch.inference_mode()
def log_ratio_per_melody(policy: MelodyPrior, prior: MelodyPrior, tokens: torch.Tensor,
                         condition: MelodyCondition | None = None, start: int = 0) -> torch.Tensor:
    """Σ_t log π(y_t|·) − log p(y_t|·) of each melody (``tokens`` ``[N, T]``) under a policy
    network and the prior, shape ``[N]``: its mean over melodies the policy sampled is a
    Monte-Carlo estimate of KL(policy‖prior). ``start``: the steps before it (an opening both
    were given, not sampled) are left out. Computed without gradients, :data:`CHUNK_MELODIES` at a
    time (a long melody's states for thousands of candidates would not fit in memory at once)."""
    parts = []
    with torch.inference_mode():
        for first in range(0, tokens.shape[0], CHUNK_MELODIES):
            chunk = tokens[first:first + CHUNK_MELODIES]
            parts.append((policy.log_likelihood(chunk, condition)[:, start:].sum(-1)
                          - prior.log_likelihood(chunk, condition)[:, start:].sum(-1)).double())
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


CHUNK_MELODIES = 512
"""Melodies :func:`log_ratio_per_melody` runs through the two networks at once."""
