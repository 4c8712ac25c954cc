"""The n-gram baseline: a proper distribution that learns what it sees."""

import numpy as np
import pytest

from rlcomposer.prior.ngram import NGramModel, best_ngram


def _all_next_token_probabilities(model: NGramModel, history: list[int], vocab: int) -> np.ndarray:
    return np.array([
        np.exp(model.log_probs([np.array(history + [token])])[-1]) for token in range(vocab)
    ])


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one(order):
    rng = np.random.default_rng(0)
    train = [rng.integers(0, 6, size=40) for _ in range(20)]
    model = NGramModel(order, 6).fit(train)
    for history in ([], [1], [2, 3, 4], [5, 5, 5, 5, 5]):
        assert _all_next_token_probabilities(model, history, 6).sum() == pytest.approx(1.0)


def test_higher_order_learns_a_deterministic_pattern_and_is_chosen():
    pattern = np.tile([0, 1, 2, 3], 30)
    noise = np.random.default_rng(1).integers(0, 4, size=120)
    train = [pattern, noise]
    validation = [np.tile([0, 1, 2, 3], 10)]
    best, scores = best_ngram(train, validation, vocab_size=4, orders=(1, 2, 3))
    assert best.order >= 2
    assert scores[(1, 0.75)] > scores[(best.order, best.discount)]
    assert best.mean_nll(validation) < np.log(4) / 2


def test_unseen_tokens_keep_probability():
    model = NGramModel(3, 5).fit([np.array([0, 1, 0, 1, 0, 1])])
    assert np.isfinite(model.log_probs([np.array([4, 4, 3])])).all()
