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
    # the melodies just heard are not proposed again while other melodies fit
    assert ids[2] not in item.melody_ids and ids[4] not in item.melody_ids
    again = strategy.next_item(store, rater, "pair", exclude=[item])
    assert again.key != item.key and not set(again.melody_ids) & (set(item.melody_ids) | {ids[2], ids[4]})


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


@pytest.mark.parametrize("strategy_name", ["random", "active", "cross-tag"])
def test_no_melody_comes_back_within_three_items_of_a_20_item_study(tmp_path, strategy_name):
    """Over 20 answered pairs, a melody is never in two of any 3 consecutive items, except as a
    deliberate repeat (the share of repeats stays as the study sets it)."""
    from rlcomposer.feedback.selection import CrossTagSelection, RandomSelection

    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    melodies = prior_like_melodies(16, seed=3)
    first = store.add_melodies(melodies[:8], "prior", model="m").ids
    second = store.add_melodies(melodies[8:], "tuned", model="m").ids
    rater = store.sign_in("Ann").id
    key = {m.tokens.tobytes(): i for i, m in enumerate(melodies)}
    strategy = {"random": RandomSelection(repeat_share=0.3, seed=5),
                "active": ActiveSelection(FakeEnsemble(np.random.default_rng(0).normal(size=(3, 16)), key), rng=5),
                "cross-tag": CrossTagSelection(repeat_share=0.3, tags=("prior", "tuned"), seed=5)}[strategy_name]
    items = []
    upcoming = strategy.next_item(store, rater, "pair")
    for _ in range(20):  # as the app does: the item on screen, and the next one chosen ahead
        shown, upcoming = upcoming, strategy.next_item(store, rater, "pair", exclude=[upcoming])
        items.append(shown)
        store.submit_comparison(new_client_id(), rater, *shown.melody_ids, "a", "a", is_repeat=shown.is_repeat)
    assert len(items) == 20 and all(i is not None for i in items)
    for index, item in enumerate(items):
        if item.is_repeat:
            continue
        for earlier in items[max(0, index - 2):index]:
            assert not set(item.melody_ids) & set(earlier.melody_ids), (index, items[max(0, index - 2):index + 1])
    if strategy_name != "active":
        assert any(i.is_repeat for i in items)  # deliberate repeats still come
    if strategy_name == "cross-tag":
        assert all({store.get_melody(m).tag for m in i.melody_ids} == {"prior", "tuned"} for i in items
                   if not i.is_repeat)
    assert set(first) and set(second)
