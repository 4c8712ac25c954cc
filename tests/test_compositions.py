"""A rater's compositions (the app's "Continue my tune" page, through the library): an opening is
read with `rlcomposer continue`'s readers, continued four ways, and the pick is stored as three
comparisons under the rater's own tag, read back as that rater's training labels."""

from __future__ import annotations

import pytest

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.compositions import (
    CHOICES_SHOWN,
    CompositionError,
    compose_continuations,
    composed_tag,
    read_pasted_opening,
    read_uploaded_opening,
    store_pick,
)
from rlcomposer.feedback.selection import RandomSelection
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.labels import load_training_data
from rlcomposer.prior.continuation import kept_opening
from rlcomposer.prior.model import load_prior

OPENING = "X:1\nT:Little Waltz\nM:3/4\nL:1/8\nK:D\nA2 | d2 f2 a2 | g2 e2 c2 |\n"


@pytest.fixture(scope="module")
def prior():
    return load_prior("prior")


@pytest.fixture()
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'ratings.db'}")


def test_a_pick_is_stored_as_three_comparisons_under_the_rater_s_tag(store, prior):
    rater, _ = store.register_rater("Ada")
    opening = read_pasted_opening(OPENING)
    composition = compose_continuations(opening, 4, seed=3, model=prior)
    assert len(composition.continuations) == CHOICES_SHOWN
    assert len({tuple(m.tokens) for m in composition.continuations}) == CHOICES_SHOWN  # four different ones
    assert all(kept_opening(m, opening) for m in composition.continuations)
    session = store.start_session(rater.id, client="test")
    records = store_pick(store, rater.id, composition.continuations, 2, new_client_id(), session)
    assert len(records) == 3 and {r.choice for r in records} == {"a"}
    assert dict(store.tags()) == {"composed:Ada": 4}
    chosen_id = records[0].melody_a_id
    assert {r.melody_a_id for r in records} == {chosen_id}
    assert chosen_id not in {r.melody_b_id for r in records}
    data = load_training_data(store, tag=composed_tag("Ada"))
    assert len(data.comparisons) == 3 and {p.rater for p in data.comparisons} == {"Ada"}
    for label in data.comparisons:
        assert label.choice == "a"
        assert label.melody_a.notes() == composition.continuations[2].notes()
        assert (label.melody_a.metre.name, label.melody_a.key.name, label.melody_a.pickup_steps) == (
            "3/4", "D major", 4)
    assert len(load_training_data(store, rater="Ada").comparisons) == 3  # `reward train --rater Ada`


def test_the_same_pick_twice_is_stored_once_and_none_stores_nothing(store, prior):
    rater, _ = store.register_rater("Bo")
    composition = compose_continuations(read_pasted_opening(OPENING), 4, seed=1, model=prior)
    assert store_pick(store, rater.id, composition.continuations, None, new_client_id()) == []
    assert store.tags() == []
    pick = new_client_id()
    first = store_pick(store, rater.id, composition.continuations, 0, pick)
    again = store_pick(store, rater.id, composition.continuations, 0, pick)
    assert all(r.created for r in first) and not any(r.created for r in again)
    assert len(store.comparisons()) == 3
    with pytest.raises(CompositionError, match="not one of the 4"):
        store_pick(store, rater.id, composition.continuations, 4, new_client_id())


def test_compositions_are_never_served_by_a_study_over_the_whole_pool(store, prior):
    rater, _ = store.register_rater("Cy")
    composition = compose_continuations(read_pasted_opening(OPENING), 4, seed=2, model=prior)
    store_pick(store, rater.id, composition.continuations, 1, new_client_id())
    other, _ = store.register_rater("Di")
    assert RandomSelection(repeat_share=0.0).next_item(store, other.id, "pair") is None
    store.add_melodies([Melody([14, 1, 1, 1] * 4), Melody([16, 1, 1, 1] * 4)], "pool")
    item = RandomSelection(repeat_share=0.0).next_item(store, other.id, "pair")
    assert item is not None and set(item.melody_ids) == set(store.melody_ids(["pool"]))


@pytest.mark.parametrize(("text", "message"), [
    ("", "paste an ABC opening"),
    ("X:1\nM:4/4\nL:1/8\nK:C\nCDEF GABc |]\n" + "Z:" + "x" * 5_000_000, "larger than the limit"),
    ("X:1\nM:4/4\nL:1/8\nY:what\nK:C\nCDEF GABc |\n", "unknown header field 'Y:'"),
    ("X:1\nM:4/4\nL:1/8\nK:C\nc8 | CDEF GAB | c8 |\n", "bar"),
    ("X:1\nM:4/4\nL:1/8\nK:Hmaj\nCDEF GABc |\n", "K:Hmaj is not a key"),
    ("X:1\nM:4/4\nL:1/8\nK:C\nV:1\nCDEF GABc |\nV:2\nC8 |\n", "a second voice"),
])
def test_a_bad_pasted_opening_is_one_line(text, message):
    with pytest.raises(CompositionError) as raised:
        read_pasted_opening(text)
    text_of = str(raised.value)
    assert "\n" not in text_of and "/tmp" not in text_of and "opening.abc" not in text_of
    if message:
        assert message in text_of


def test_an_opening_that_the_model_cannot_continue_is_one_line(prior, tiny_prior_dir):
    opening = read_pasted_opening("X:1\nM:4/4\nL:1/8\nK:C\nCDEF GABc | c8 |\n")
    with pytest.raises(CompositionError, match="already 2 bars long"):
        compose_continuations(opening, 2, model=prior)
    too_long = read_pasted_opening("X:1\nM:4/4\nL:1/8\nK:C\n" + "c8 |" * 40 + "\n")
    with pytest.raises(CompositionError, match="more than the limit of 32 bars"):
        compose_continuations(too_long, 8, model=prior)
    with pytest.raises(CompositionError, match="unknown metre '5/4'"):
        read_pasted_opening("X:1\nM:5/4\nL:1/8\nK:C\nCDEF GABc d2 |\n")
    with pytest.raises(CompositionError) as raised:  # a model that knows only 4/4 major and minor
        compose_continuations(read_pasted_opening(OPENING), 4, model=load_prior(tiny_prior_dir))
    assert "3/4" in str(raised.value) and "\n" not in str(raised.value)


def test_an_uploaded_file_is_read_by_its_suffix(tmp_path):
    melody = read_pasted_opening(OPENING)
    path = tmp_path / "mine.mid"
    melody.save(path)
    opening = read_uploaded_opening("mine.mid", path.read_bytes())
    assert opening.notes() == melody.notes()
    with pytest.raises(CompositionError, match="'tune.txt': an opening is an ABC"):
        read_uploaded_opening("tune.txt", b"hello")
    with pytest.raises(RLComposerError) as raised:
        read_uploaded_opening("broken.mid", b"not a midi file")
    assert "broken.mid" in str(raised.value) and "/tmp" not in str(raised.value)
