"""The rating store, on SQLite and on PostgreSQL: what the app, the CLI and the listeners rely on."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sqlalchemy as sa

from rlcomposer.feedback import database, statistics
from rlcomposer.feedback.database import DatabaseError, DatabaseUnavailable
from rlcomposer.feedback.schema import StoredMelody
from rlcomposer.feedback.selection import Item, RandomSelection, SelectionStrategy
from rlcomposer.feedback.store import FeedbackError, FeedbackStore, new_client_id, open_store
from rlcomposer.feedback.testing import (
    clear_tables,
    throwaway_postgres,
)
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody, random_melody


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    with throwaway_postgres(postgres_server) as url:
        database.upgrade_database(url)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> FeedbackStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ratings.sqlite3'}"
        yield open_store(url)
        database.dispose_engine(url)
    else:
        url = request.getfixturevalue("postgres_url")
        clear_tables(url)
        yield open_store(url)


def melodies(n: int, seed: int = 0) -> list[Melody]:
    rng = np.random.default_rng(seed)
    return [random_melody(rng, 32).with_metadata(seed=seed, index=i) for i in range(n)]


@pytest.fixture
def pool(store):
    """A rater and six melodies in two tags."""
    rater = store.sign_in("Ann")
    prior = store.add_melodies(melodies(3, 1), "prior", model="prior", model_config={"hidden_size": 256})
    tuned = store.add_melodies(melodies(3, 2), "tuned", model="runs/tuned", experiment="exp-1")
    return rater, prior.ids + tuned.ids


# ------------------------------------------------------------------- raters
def test_sign_in_creates_a_rater_once(store):
    first = store.sign_in("  Ann   Lee ")
    again = store.sign_in("Ann Lee")
    assert first.id == again.id and first.name == "Ann Lee" and not first.consented
    assert store.record_consent(first.id).consented
    assert [r.name for r in store.raters()] == ["Ann Lee"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, "sim:fake", "a\x00b"])
def test_bad_rater_names_are_refused(store, name):
    with pytest.raises(FeedbackError, match="rater name"):
        store.sign_in(name)
    assert store.raters() == []


def test_simulated_raters_are_kept_apart_from_people(store):
    sim = store.sign_in("sim:listeners:bright", kind="simulated")
    assert sim.kind == "simulated"
    with pytest.raises(FeedbackError, match="must start with 'sim:'"):
        store.sign_in("bob", kind="simulated")


# --------------------------------------------------------------------- pool
def test_pool_keeps_melodies_and_provenance(store, pool):
    _, ids = pool
    record = store.get_melody(ids[0])
    assert record.melody == melodies(3, 1)[0]
    assert (record.tag, record.model, record.seed, record.sample_index) == ("prior", "prior", 1, 0)
    assert store.get_melody(ids[4]).experiment == "exp-1"
    assert store.tags() == [("prior", 3), ("tuned", 3)]
    assert store.melody_ids(["tuned"]) == ids[3:]
    assert {m["name"]: m["config"] for m in store.models()}["prior"] == {"hidden_size": 256}


def test_pool_keeps_each_melodys_metre_key_and_pick_up(store):
    rng = np.random.default_rng(3)
    jig = Melody(rng.integers(2, 39, 26), {"title": "jig"}, "6/8", Key("G", "major"), pickup_steps=2)
    reel = Melody(rng.integers(2, 39, 36), {}, "4/4", Key("C", "major"), pickup_steps=4)
    plain = Melody(rng.integers(2, 39, 32), {"metre": "3/4", "pickup_steps": 5})  # a stale copy is not kept
    ids = store.add_melodies([jig, reel, plain], "mixed").ids
    back = [store.get_melody(i).melody for i in ids]
    assert back == [jig, reel, plain]  # tokens, metre, key and pick-up
    assert [(m.metre.name, m.key.name, m.pickup_steps) for m in back] == [
        ("6/8", "G major", 2), ("4/4", "C major", 4), ("4/4", "C major", 0)]
    assert back[0].metadata["title"] == "jig" and "pickup_steps" not in back[0].metadata
    with store._session() as session:
        extras = dict(session.execute(sa.select(StoredMelody.id, StoredMelody.extra)).all())
    assert extras[ids[1]] == {"pickup_steps": 4} and extras[ids[2]] == {}  # stored only when not the default
    assert [(m.metre, m.key, m.pickup_steps) for m in store.pool_melodies("mixed")] == [
        ("6/8", "G major", 2), ("4/4", "C major", 4), ("4/4", "C major", 0)]


@pytest.mark.parametrize("extra, what", [
    ({"metre": "7/5"}, "metre '7/5'"),
    ({"metre": 68}, "metre 68"),
    ({"metre": "6/8", "key": "G major"}, "key 'G major'"),
    ({"metre": "6/8", "key": {"tonic": "H", "mode": "major"}}, "key {'tonic': 'H'"),
    ({"key": {"tonic": "G", "mode": "bluesy"}}, "unknown mode 'bluesy'"),
    ({"pickup_steps": "two"}, "pick-up 'two'"),
    ({"pickup_steps": 16}, "pick-up 16"),
    ({"metre": "2/4", "pickup_steps": 8}, "shorter than the bar"),
])
def test_a_malformed_stored_metre_key_or_pick_up_is_one_line_naming_the_melody(store, extra, what):
    ids = store.add_melodies(melodies(2), "prior").ids
    rater = store.sign_in("Ann")
    store.submit_rating(new_client_id(), rater.id, ids[0], 4)
    with store._session(write=True) as session:
        session.execute(sa.update(StoredMelody).where(StoredMelody.id == ids[0]).values(extra=extra))
    for read in (lambda: store.get_melody(ids[0]), lambda: store.get_melodies(ids)):
        with pytest.raises(FeedbackError) as error:
            read()
        message = str(error.value)
        assert message.startswith(f"melody id {ids[0]} (tag prior): its stored ") and what in message
        assert len(message.splitlines()) == 1 and len(message) < 300
    assert store.get_melody(ids[1]).melody == melodies(2)[1]  # the others still read
    # the tables and the export show what is stored instead of failing
    shown = {m.id: m for m in store.pool_melodies()}[ids[0]]
    [row] = store.export_rows()
    assert (row["melody_metre"], row["melody_key"], row["melody_pickup_steps"]) == (
        shown.metre, shown.key, shown.pickup_steps)


def test_a_pick_up_longer_than_its_melody_is_one_line_naming_the_melody(store):
    [melody_id] = store.add_melodies([Melody([14, 1, 1, 1], {}, "6/8")], "short").ids
    with store._session(write=True) as session:
        session.execute(sa.update(StoredMelody).where(StoredMelody.id == melody_id)
                        .values(extra={"metre": "6/8", "pickup_steps": 6}))
    with pytest.raises(FeedbackError, match=rf"^melody id {melody_id} \(tag short\) cannot be read \(.*longer"):
        store.get_melody(melody_id)


def test_adding_the_same_melodies_again_adds_nothing(store, pool):
    _, ids = pool
    again = store.add_melodies(melodies(3, 1), "prior", model="prior")
    assert (again.added, again.existing, again.ids) == (0, 3, ids[:3])
    other_tag = store.add_melodies(melodies(1, 1), "rerun")
    assert other_tag.added == 1
    assert store.counts()["melodies"] == 7


@pytest.mark.parametrize("tag", ["", " padded", "x" * 101])
def test_bad_tags_are_refused(store, tag):
    with pytest.raises(FeedbackError, match="tag"):
        store.add_melodies(melodies(1), tag)
    assert store.counts()["melodies"] == 0


def test_unknown_melody_ids_are_named(store, pool):
    with pytest.raises(FeedbackError, match="melody id 999 is unknown"):
        store.get_melody(999)
    with pytest.raises(FeedbackError, match="melody id 999 is unknown"):
        store.get_melodies([pool[1][0], 999])


# ------------------------------------------------------------------ submits
def test_a_double_click_stores_one_rating(store, pool):
    rater, ids = pool
    session_id = store.start_session(rater.id, "test")
    client_id = new_client_id()
    first = store.submit_rating(client_id, rater.id, ids[0], 4, session_id=session_id,
                                listened_ms=5200, answer_ms=800)
    second = store.submit_rating(client_id, rater.id, ids[0], 4, session_id=session_id)
    assert first.created and not second.created and first.id == second.id
    assert second.listened_ms == 5200
    assert store.counts()["ratings"] == 1
    assert store.count_submissions(rater.id, session_id) == {"stars": 1, "comparisons": 0, "total": 1,
                                                            "skips": 0, "answered": 1}


def test_a_reused_id_with_another_answer_is_refused(store, pool):
    rater, ids = pool
    client_id = new_client_id()
    store.submit_rating(client_id, rater.id, ids[0], 4)
    with pytest.raises(FeedbackError, match="already used for a different answer"):
        store.submit_rating(client_id, rater.id, ids[0], 1)
    with pytest.raises(FeedbackError, match="already used for a different answer"):
        store.submit_rating(client_id, rater.id, ids[1], 4)
    assert [r.stars for r in store.ratings()] == [4]


@pytest.mark.parametrize("stars", [0, 6, -1, True, 3.5, "3", None])
def test_ratings_outside_one_to_five_are_refused(store, pool, stars):
    rater, ids = pool
    with pytest.raises(FeedbackError, match="outside 1-5 stars"):
        store.submit_rating(new_client_id(), rater.id, ids[0], stars)
    assert store.counts()["ratings"] == 0


def test_unknown_rater_melody_or_session_store_nothing(store, pool):
    rater, ids = pool
    with pytest.raises(FeedbackError, match="rater id 777 is unknown"):
        store.submit_rating(new_client_id(), 777, ids[0], 3)
    with pytest.raises(FeedbackError, match="melody id 555 is unknown"):
        store.submit_rating(new_client_id(), rater.id, 555, 3)
    with pytest.raises(FeedbackError, match="melody id 555 is unknown"):
        store.submit_comparison(new_client_id(), rater.id, ids[0], 555, "a", "a")
    other = store.sign_in("Bob")
    foreign_session = store.start_session(other.id)
    with pytest.raises(FeedbackError, match="session id"):
        store.submit_rating(new_client_id(), rater.id, ids[0], 3, session_id=foreign_session)
    with pytest.raises(FeedbackError, match="not a valid id"):
        store.submit_rating(new_client_id(), "1; DROP TABLE raters", ids[0], 3)
    assert store.counts()["ratings"] == store.counts()["comparisons"] == 0


@pytest.mark.parametrize("client_id", ["short", "", None, "x" * 65, "has space in it", 12345678])
def test_malformed_submission_ids_are_refused(store, pool, client_id):
    rater, ids = pool
    with pytest.raises(FeedbackError, match="submission id"):
        store.submit_rating(client_id, rater.id, ids[0], 3)


def test_bad_timings_are_refused(store, pool):
    rater, ids = pool
    with pytest.raises(FeedbackError, match="time listened"):
        store.submit_rating(new_client_id(), rater.id, ids[0], 3, listened_ms=-5)
    with pytest.raises(FeedbackError, match="time to answer"):
        store.submit_rating(new_client_id(), rater.id, ids[0], 3, answer_ms=float("nan"))
    assert store.counts()["ratings"] == 0


def test_comparisons_record_choice_and_side(store, pool):
    rater, ids = pool
    client_id = new_client_id()
    first = store.submit_comparison(client_id, rater.id, ids[0], ids[3], "b", shown_left="b",
                                    answer_ms=1500)
    again = store.submit_comparison(client_id, rater.id, ids[0], ids[3], "b", shown_left="b")
    assert first.created and not again.created and first.winner_id == ids[3]
    assert store.compared_pairs(rater.id) == {frozenset((ids[0], ids[3]))}
    with pytest.raises(FeedbackError, match="already used"):
        store.submit_comparison(client_id, rater.id, ids[0], ids[3], "a", shown_left="b")
    assert [(c.choice, c.shown_left) for c in store.comparisons()] == [("b", "b")]


@pytest.mark.parametrize("choice, side, message", [
    ("left", "a", "choice 'left'"), ("A", "a", "choice 'A'"), ("a", "c", "shown_left"), ("a", None, "shown_left")])
def test_bad_comparisons_are_refused(store, pool, choice, side, message):
    rater, ids = pool
    with pytest.raises(FeedbackError, match=message):
        store.submit_comparison(new_client_id(), rater.id, ids[0], ids[1], choice, side)
    with pytest.raises(FeedbackError, match="two different melodies"):
        store.submit_comparison(new_client_id(), rater.id, ids[0], ids[0], "a", "a")
    assert store.counts()["comparisons"] == 0


def test_the_database_itself_refuses_bad_values(store, pool):
    """Constraints hold even for writers that skip the store's checks."""
    rater, ids = pool
    good = {"client_id": new_client_id(), "rater_id": rater.id, "melody_id": ids[0], "stars": 3,
            "is_repeat": False, "created_at": sa.func.now()}
    table = sa.table("star_ratings", *[sa.column(k) for k in good])
    pair_cols = ["client_id", "rater_id", "melody_a_id", "melody_b_id", "choice", "shown_left",
                 "is_repeat", "created_at"]
    pairs = sa.table("comparisons", *[sa.column(k) for k in pair_cols])
    pair = {"client_id": new_client_id(), "rater_id": rater.id, "melody_a_id": ids[0],
            "melody_b_id": ids[1], "choice": "a", "shown_left": "a", "is_repeat": False,
            "created_at": sa.func.now()}
    bad_rows = [
        (table, {**good, "stars": 7}), (table, {**good, "stars": 0}),
        (table, {**good, "melody_id": 9999}), (table, {**good, "rater_id": 9999}),
        (pairs, {**pair, "choice": "nope"}), (pairs, {**pair, "shown_left": "x"}),
        (pairs, {**pair, "melody_b_id": ids[0]}),
    ]
    for target, row in bad_rows:
        with pytest.raises(sa.exc.IntegrityError):
            with store.engine.begin() as connection:
                connection.execute(sa.insert(target).values(**row))
    with store.engine.begin() as connection:
        connection.execute(sa.insert(table).values(**good))
    with pytest.raises(sa.exc.IntegrityError):  # the same client id twice
        with store.engine.begin() as connection:
            connection.execute(sa.insert(table).values(**good))
    assert store.counts()["ratings"] == 1 and store.counts()["comparisons"] == 0


def test_concurrent_retries_store_each_submission_once(store, pool):
    rater, ids = pool
    client_ids = [new_client_id() for _ in range(20)]
    errors = []

    def worker():
        try:
            for i, client_id in enumerate(client_ids):
                store.submit_rating(client_id, rater.id, ids[i % len(ids)], 1 + i % 5)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.client_id for r in store.ratings()) == sorted(client_ids)


# ---------------------------------------------------------- history, export
def test_a_rater_sees_only_their_own_history(store, pool):
    ann, ids = pool
    bob = store.sign_in("Bob")
    store.submit_rating(new_client_id(), ann.id, ids[0], 5)
    store.submit_rating(new_client_id(), bob.id, ids[0], 1)
    store.submit_comparison(new_client_id(), bob.id, ids[0], ids[1], "tie", "a")
    history = store.rater_history(ann.id)
    assert [(h["rater"], h["stars"]) for h in history] == [("Ann", 5)]
    assert len(store.rater_history(bob.id)) == 2


def test_a_raters_history_is_their_newest_answers_first_up_to_the_limit(store, pool):
    ann, ids = pool
    store.submit_rating(new_client_id(), ann.id, ids[0], 3)
    store.submit_comparison(new_client_id(), ann.id, ids[0], ids[1], "a", "a")
    store.submit_rating(new_client_id(), ann.id, ids[2], 4)
    store.submit_comparison(new_client_id(), ann.id, ids[3], ids[4], "skip", "b")
    history = store.rater_history(ann.id)
    assert [(h["kind"], h["stars"], h["choice"]) for h in history] == [
        ("comparison", None, "skip"), ("stars", 4, None), ("comparison", None, "a"), ("stars", 3, None)]
    assert {h["melody_tokens"] for h in history} == {None} and history[0]["melody_b_tag"] == "tuned"
    assert store.rater_history(ann.id, limit=2) == history[:2]
    assert store.rater_history(ann.id, limit=0) == []


def test_comparisons_of_tags_keep_only_pairs_with_both_melodies_in_them(store, pool):
    ann, ids = pool  # ids 0-2 are tagged prior, 3-5 tuned
    store.submit_comparison(new_client_id(), ann.id, ids[0], ids[1], "a", "a")
    store.submit_comparison(new_client_id(), ann.id, ids[0], ids[3], "b", "a")
    store.submit_comparison(new_client_id(), ann.id, ids[4], ids[5], "tie", "b")
    pairs = lambda tags: [(c.melody_a_id, c.melody_b_id) for c in store.comparisons(tags)]  # noqa: E731
    assert pairs(["prior"]) == [(ids[0], ids[1])]
    assert pairs(["tuned"]) == [(ids[4], ids[5])]
    assert pairs(["prior", "tuned"]) == pairs(None) == [(ids[0], ids[1]), (ids[0], ids[3]), (ids[4], ids[5])]
    assert pairs(["nothing"]) == []


def test_export_rows_of_raters_by_name_or_id(store, pool):
    ann, ids = pool
    bob, cy = store.sign_in("Bob"), store.sign_in("Cy")
    for rater in (ann, bob, cy):
        store.submit_rating(new_client_id(), rater.id, ids[0], 3)
    assert [r["rater"] for r in store.export_rows(rater_names=["Bob"], rater_ids=[cy.id])] == ["Bob", "Cy"]
    assert [r["rater"] for r in store.export_rows(rater_ids=[ann.id])] == ["Ann"]
    assert store.export_rows(rater_names=[], rater_ids=[]) == []


def test_export_rows_carry_melody_and_rater(store, pool):
    rater, ids = pool
    store.submit_rating(new_client_id(), rater.id, ids[1], 2)
    store.submit_comparison(new_client_id(), rater.id, ids[0], ids[4], "a", "b")
    rows = store.export_rows()
    stars, pair = rows
    assert (stars["kind"], stars["rater"], stars["stars"], stars["melody_tag"]) == ("stars", "Ann", 2, "prior")
    assert stars["melody_tokens"].split() == [str(t) for t in melodies(3, 1)[1].tokens]
    assert (pair["choice"], pair["shown_left"], pair["melody_b_tag"], pair["melody_b_model"]) == (
        "a", "b", "tuned", "runs/tuned")
    assert store.export_rows(tags=["tuned"]) == [pair]
    assert store.export_rows(rater_names=["nobody"]) == []


def test_export_rows_carry_each_melodys_metre_key_and_pick_up(store):
    rng = np.random.default_rng(5)
    jigs = [Melody(rng.integers(2, 39, 26), {}, "6/8", Key("G", "major"), pickup_steps=2) for _ in range(2)]
    [waltz] = [Melody(rng.integers(2, 39, 24), {}, "3/4", Key("F", "dorian"))]
    a, b, c = store.add_melodies([*jigs, waltz], "mixed").ids
    rater = store.sign_in("Ann")
    store.submit_rating(new_client_id(), rater.id, c, 3)
    store.submit_comparison(new_client_id(), rater.id, a, b, "b", "a")
    stars, pair = store.export_rows()
    assert (stars["melody_metre"], stars["melody_key"], stars["melody_pickup_steps"]) == ("3/4", "F dorian", 0)
    assert (stars["melody_b_metre"], stars["melody_b_key"], stars["melody_b_pickup_steps"]) == (None, None, None)
    assert [pair[f"{side}_{what}"] for side in ("melody", "melody_b") for what in ("metre", "key", "pickup_steps")] \
        == ["6/8", "G major", 2] * 2


# ---------------------------------------------------------------- dashboard
def test_dashboard_figures(store, pool):
    ann, ids = pool
    bob = store.sign_in("Bob")
    # prior (ids 0-2) against tuned (ids 3-5): tuned wins 2, one tie
    store.submit_comparison(new_client_id(), ann.id, ids[0], ids[3], "b", "a")
    store.submit_comparison(new_client_id(), bob.id, ids[3], ids[0], "a", "b")
    store.submit_comparison(new_client_id(), bob.id, ids[1], ids[4], "tie", "a")
    store.submit_comparison(new_client_id(), bob.id, ids[1], ids[2], "skip", "a")
    # Ann repeats her pair, shown the other way round, and agrees with herself
    store.submit_comparison(new_client_id(), ann.id, ids[3], ids[0], "a", "a", is_repeat=True)
    store.submit_rating(new_client_id(), ann.id, ids[0], 4)
    store.submit_rating(new_client_id(), bob.id, ids[0], 2)
    store.submit_rating(new_client_id(), ann.id, ids[0], 5, is_repeat=True)

    rates = {(r["tag"], r["against"]): (r["win_rate"], r["comparisons"])
             for r in statistics.tag_win_rates(store)}
    assert rates[("tuned", "prior")] == (pytest.approx(2.5 / 3), 3)
    assert rates[("prior", "tuned")] == (pytest.approx(0.5 / 3), 3)
    agreement = statistics.agreement(store)
    assert agreement["pair_judgement_pairs"] == 1 and agreement["pair_agreement"] == 1.0
    assert agreement["star_mean_abs_difference"] == 2 and agreement["star_within_one"] == 0
    consistency = {row["rater"]: row for row in statistics.self_consistency(store)}
    assert consistency["Ann"]["pair_consistency"] == 1.0
    assert consistency["Ann"]["star_exact"] == 0.0 and consistency["Ann"]["star_within_one"] == 1.0
    by_rater = {row["rater"]: row["count"] for row in statistics.activity(store, "rater")}
    assert by_rater == {"Ann": 4, "Bob": 4}
    best = statistics.browse_melodies(store)
    assert best[0].id == ids[0] and best[0].num_ratings == 3
    assert [m.id for m in statistics.browse_melodies(store, tag="tuned")] == ids[3:] or \
        {m.id for m in statistics.browse_melodies(store, tag="tuned")} == set(ids[3:])
    assert [m.id for m in statistics.browse_melodies(store, min_mean_stars=3)] == [ids[0]]
    assert store.melody_tags() == {i: "prior" if k < 3 else "tuned" for k, i in enumerate(ids)}
    (first, *_) = store.pool_melodies(tag="prior")
    assert (first.id, first.num_ratings, first.mean_stars, first.model) == (ids[0], 3, pytest.approx(11 / 3), "prior")
    with pytest.raises(FeedbackError, match="activity by 'weekday'"):
        statistics.activity(store, "weekday")


# ---------------------------------------------------------------- selection
def test_random_selection_never_repeats_an_item_unless_it_says_so(store, pool):
    rater, ids = pool
    strategy = RandomSelection(repeat_share=0.0, seed=0)
    assert isinstance(strategy, SelectionStrategy)
    seen = []
    while (item := strategy.next_item(store, rater.id, "single")) is not None:
        seen.append(item.melody_ids[0])
        store.submit_rating(new_client_id(), rater.id, item.melody_ids[0], 3)
    assert sorted(seen) == sorted(ids)
    pairs = []
    while (item := strategy.next_item(store, rater.id, "pair")) is not None:
        pairs.append(frozenset(item.melody_ids))
        store.submit_comparison(new_client_id(), rater.id, *item.melody_ids, "a", "a")
    assert len(pairs) == len(set(pairs)) == 15


def test_random_selection_skips_items_on_their_way_and_repeats_on_purpose(store, pool):
    rater, ids = pool
    strategy = RandomSelection(repeat_share=0.0, seed=1)
    shown = strategy.next_item(store, rater.id, "single")
    for _ in range(20):
        assert strategy.next_item(store, rater.id, "single", exclude=[shown]) != shown
    for melody_id in ids:
        store.submit_rating(new_client_id(), rater.id, melody_id, 3)
    always_repeat = RandomSelection(repeat_share=0.5, min_history_for_repeat=1, seed=2)
    items = [always_repeat.next_item(store, rater.id, "single") for _ in range(20)]
    assert all(item is None or item.is_repeat for item in items)
    assert any(item is not None and item.is_repeat for item in items)
    with pytest.raises(Exception, match="repeat share"):
        RandomSelection(repeat_share=0.9)
    with pytest.raises(Exception, match="two different melodies"):
        Item("pair", (1, 1))


# ------------------------------------------------------------ availability
def test_a_database_that_is_down_gives_a_clear_error():
    store = FeedbackStore("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseUnavailable, match="is unavailable"):
        store.sign_in("Ann")
    database.dispose_engine(store.url)


def test_a_locked_sqlite_database_gives_a_clear_error_and_stores_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}?timeout=0.2"
    store = open_store(url)
    rater = store.sign_in("Ann")
    ids = store.add_melodies(melodies(1), "t").ids
    import sqlite3

    blocker = sqlite3.connect(tmp_path / "locked.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseUnavailable, match="database is locked"):
            store.submit_rating(new_client_id(), rater.id, ids[0], 3)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    client_id = new_client_id()
    assert store.submit_rating(client_id, rater.id, ids[0], 3).created  # the retry goes through
    assert store.counts()["ratings"] == 1
    database.dispose_engine(url)


# ---------------------------------------------------------------------- URLs
def test_database_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert database.resolve_database_url(None, None) == database.default_database_url()
    assert database.default_database_url().endswith("feedback.sqlite3")
    # a relative SQLite file is the one in the working folder (made absolute, so that an engine
    # cached for it is never reused after the working folder changes)
    assert database.resolve_database_url("sqlite:///a.db", "sqlite:///b.db") == f"sqlite:///{tmp_path / 'a.db'}"
    assert database.resolve_database_url(None, "sqlite:///b.db") == f"sqlite:///{tmp_path / 'b.db'}"
    assert database.resolve_database_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert database.normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    for bad, reason in [("mysql://u@h/db", "unsupported database"),
                        ("postgresql+asyncpg://u@h/db", "psycopg"),
                        ("postgresql://u@h", "names no database")]:
        with pytest.raises(DatabaseError, match=reason):
            database.normalise_url(bad)
    with pytest.raises(DatabaseError, match="does not exist"):
        database.create_database_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert "secret" not in database.display_url("postgresql+psycopg://u:secret@h/db")


def test_a_raters_current_item_keeps_what_has_played_until_it_is_answered(store, pool):
    ann, ids = pool
    study_id = store.create_study("s", pool_tags=[], mode="pairs", items_per_rater=5, instructions="",
                                  consent_text="", selection="random", listen_fraction=1.0, repeat_share=0.0)
    assert store.current_item(ann.id, study_id) is None
    first = new_client_id()
    store.save_current_item(ann.id, study_id, first, "pair", ids[:2], "b", False)
    store.record_listening(ann.id, study_id, first, {"A": 3000})
    store.record_listening(ann.id, study_id, first, {"A": 1000, "B": 2500})  # never lowered
    store.record_listening(ann.id, study_id, new_client_id(), {"A": 9999})  # another item: ignored
    kept = store.current_item(ann.id, study_id)
    assert kept == {"client_id": first, "kind": "pair", "melody_ids": ids[:2], "shown_left": "b",
                    "is_repeat": False, "played_ms": {"A": 3000, "B": 2500}}
    second = new_client_id()
    store.save_current_item(ann.id, study_id, second, "pair", ids[2:4], "a", False)  # replaces it
    assert store.current_item(ann.id, study_id)["client_id"] == second
    store.submit_comparison(second, ann.id, ids[2], ids[3], "a", "a", study_id=study_id)
    assert store.current_item(ann.id, study_id) is None  # answered
    with pytest.raises(FeedbackError, match="time played of A"):
        store.record_listening(ann.id, study_id, second, {"A": -5})
    store.mark_heard(ann.id, [ids[0], ids[1]])
    store.mark_heard(ann.id, [ids[0]])  # once each
    assert store.heard_melody_ids(ann.id) == {ids[0], ids[1]}
    assert store.recent_items(ann.id, 3) == [(ids[2], ids[3])]
