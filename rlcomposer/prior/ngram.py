"""Smoothed n-gram baseline for the prior: interpolated absolute discounting.

Contexts are encoded as integers in base ``vocab + 1`` (the extra symbol is the
start-of-melody padding), counted with ``numpy.unique``, and looked up with
``searchsorted``, so fitting a million tokens takes seconds.

``P_k(w | h) = max(c(h, w) - D, 0) / c(h) + D * N1+(h, .) / c(h) * P_{k-1}(w | h')``
where ``h'`` drops the oldest token of ``h``; an unseen context backs off fully;
``P_{-1}`` is uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class _ContextCounts:
    context_ids: np.ndarray  # sorted unique contexts
    context_totals: np.ndarray  # c(h)
    context_types: np.ndarray  # N1+(h, .)
    joint_ids: np.ndarray  # sorted unique (h, w)
    joint_counts: np.ndarray  # c(h, w)


class NGramModel:
    """An n-gram model of order ``order`` (1 = unigram) over ``vocab_size`` tokens."""

    def __init__(self, order: int, vocab_size: int, discount: float = 0.75):
        if not 1 <= order <= 6:
            raise ValueError(f"n-gram order must be 1..6, got {order}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must be in (0, 1), got {discount}")
        self.order = order
        self.vocab_size = vocab_size
        self.base = vocab_size + 1
        self.pad = vocab_size
        self.discount = discount
        self.counts: list[_ContextCounts] = []

    def _contexts(self, sequences: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
        """(context id of each position's last ``length`` tokens, the token itself)."""
        ids, targets = [], []
        for sequence in sequences:
            sequence = np.asarray(sequence, dtype=np.int64)
            padded = np.concatenate([np.full(self.order - 1, self.pad, dtype=np.int64), sequence])
            start = self.order - 1
            context = np.zeros(sequence.size, dtype=np.int64)
            for back in range(1, length + 1):
                context = context * self.base + padded[start - back: start - back + sequence.size]
            ids.append(context)
            targets.append(sequence)
        return np.concatenate(ids), np.concatenate(targets)

    def fit(self, sequences: Sequence[np.ndarray]) -> NGramModel:
        self.counts = []
        for length in range(self.order):
            contexts, targets = self._contexts(sequences, length)
            joint = contexts * self.base + targets
            joint_ids, joint_counts = np.unique(joint, return_counts=True)
            context_ids, context_totals = np.unique(contexts, return_counts=True)
            joint_context = joint_ids // self.base
            _, context_types = np.unique(joint_context, return_counts=True)
            self.counts.append(
                _ContextCounts(context_ids, context_totals, context_types, joint_ids, joint_counts)
            )
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
        index = np.clip(np.searchsorted(keys, queries), 0, len(keys) - 1)
        found = keys[index] == queries
        return np.where(found, values[index], 0)

    def log_probs(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Natural-log probability of every token of every sequence, concatenated."""
        probability = None
        for length in range(self.order):
            counts = self.counts[length]
            contexts, targets = self._contexts(sequences, length)
            if probability is None:
                probability = np.full(targets.size, 1.0 / self.vocab_size)
            total = self._lookup(counts.context_ids, counts.context_totals, contexts).astype(float)
            types = self._lookup(counts.context_ids, counts.context_types, contexts).astype(float)
            joint = self._lookup(counts.joint_ids, counts.joint_counts, contexts * self.base + targets)
            seen = total > 0
            safe_total = np.where(seen, total, 1.0)
            mixed = (np.maximum(joint - self.discount, 0.0) + self.discount * types * probability) / safe_total
            probability = np.where(seen, mixed, probability)
        assert probability is not None
        return np.log(probability)

    def truncated(self, order: int, discount: float | None = None) -> NGramModel:
        """The fitted model of a lower order (counts of shorter contexts are shared)."""
        if not 1 <= order <= self.order:
            raise ValueError(f"order must be 1..{self.order}, got {order}")
        model = NGramModel(self.order, self.vocab_size, discount or self.discount)
        model.counts = self.counts[:order]
        model.order = order
        return model

    def mean_nll(self, sequences: Sequence[np.ndarray]) -> float:
        return float(-self.log_probs(sequences).mean())


def best_ngram(
    train: Sequence[np.ndarray],
    validation: Sequence[np.ndarray],
    vocab_size: int,
    orders: Sequence[int] = (1, 2, 3, 4, 5),
    discounts: Sequence[float] = (0.5, 0.75, 0.9),
) -> tuple[NGramModel, dict[tuple[int, float], float]]:
    """Fit every (order, discount) on ``train``; return the best on ``validation``."""
    scores: dict[tuple[int, float], float] = {}
    best: NGramModel | None = None
    full = NGramModel(max(orders), vocab_size).fit(train)
    for order in orders:
        for discount in discounts:
            model = full.truncated(order, discount)
            scores[(order, discount)] = model.mean_nll(validation)
            if best is None or scores[(order, discount)] < scores[(best.order, best.discount)]:
                best = model
    assert best is not None
    return best, scores
