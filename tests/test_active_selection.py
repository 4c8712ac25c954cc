"""Active selection: the pair where the ensemble's members disagree most."""

from __future__ import annotations

import numpy as np
import pytest
from test_listeners import prior_like_melodies

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.selection import ActiveSelection, SelectionStrategy
from rlcomposer.feedback.store import new_client_id, open_store


class FakeEnsemble:
    """Member scores chosen by the test: melody ``i`` (by first token) gets ``table[:, i]``."""

    def __init__(self, table: np.ndarray, key):
        self.table = table
        self.key = key
        self.calls = 0

    def member_scores(self, melodies):
        self.calls += 1
        return np.stack([self.table[:, self.key[m.tokens.tobytes()]] for m in melodies], axis=1)


@pytest.fixture()
def setup(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    melodies = prior_like_melodies(6, seed=7)
    ids = store.add_melodies(melodies, "pool", model="m").ids
    key = {m.tokens.tobytes(): i for i, m in enumerate(melodies)}
    table = np.zeros((3, 6))
    table[:, 2] = [-3.0, 0.0, 3.0]  # members disagree about melody 2 ...
    table[:, 4] = [3.0, 0.0, -3.0]  # ... and the opposite way about melody 4
    rater = store.sign_in("sim:test", kind="simulated")
    return store, ids, FakeEnsemble(table, key), rater.id


def test_picks_highest_variance_pair(setup):
    store, ids, ensemble, rater = setup
    strategy = ActiveSelection(ensemble, candidate_pairs=256, rng=0)
    assert isinstance(strategy, SelectionStrategy)
    item = strategy.next_item(store, rater, "pair")
    assert item.kind == "pair" and set(item.melody_ids) == {ids[2], ids[4]}
    single = strategy.next_item(store, rater, "single")
    assert single.melody_ids[0] in (ids[2], ids[4])
    calls = ensemble.calls
    strategy.next_item(store, rater, "pair")
    assert ensemble.calls == calls  # scores are cached per melody


def test_skips_seen_and_excluded_pairs(setup):
    store, ids, ensemble, rater = setup
    strategy = ActiveSelection(ensemble, candidate_pairs=256, rng=0)
    store.submit_comparison(new_client_id(), rater, ids[2], ids[4], "a", "a")
    item = strategy.next_item(store, rater, "pair")
    assert set(item.melody_ids) != {ids[2], ids[4]}
    assert ids[2] in item.melody_ids or ids[4] in item.melody_ids
    again = strategy.next_item(store, rater, "pair", exclude=[item])
    assert again.key != item.key


def test_exhausted_pool_gives_none(setup):
    store, ids, ensemble, rater = setup
    strategy = ActiveSelection(ensemble, candidate_pairs=4, rng=1)
    seen = set()
    for _ in range(15):
        item = strategy.next_item(store, rater, "pair")
        assert item is not None and item.key not in seen
        seen.add(item.key)
        store.submit_comparison(new_client_id(), rater, *item.melody_ids, "tie", "a")
    assert strategy.next_item(store, rater, "pair") is None


def test_needs_an_ensemble():
    with pytest.raises(RLComposerError):
        ActiveSelection(object())
