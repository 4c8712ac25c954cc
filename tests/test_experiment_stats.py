"""Per-experiment figures for the dashboard: reward-model accuracy on people, people's win-rates,
and pairs across two tags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlcomposer.checkpoints import CONFIG_FILE
from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.experiment_stats import (
    experiment_summaries,
    latest_reward_models,
    parse_round_tag,
    people_win_rates,
    reward_model_accuracy_on_people,
)
from rlcomposer.feedback.selection import CrossTagSelection, SelectionStrategy
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.music.melody import random_melody
from rlcomposer.preferences.reward_model import (
    PairLabel,
    RewardModelConfig,
    save_reward_model,
    train_reward_model,
)
from rlcomposer.preferences.reward_model_cache import (
    clear_reward_model_cache,
    load_reward_model_cached,
)


def tiny_reward_model(prior_dir, out_dir, seed: int = 0):
    """A tiny reward model on simulated comparisons (the listener likes high first tokens); saved to out_dir."""
    rng = np.random.default_rng(seed)
    melodies = [random_melody(rng, 16) for _ in range(24)]
    labels = []
    for i in range(24):
        a, b = melodies[i], melodies[(i + 5) % 24]
        labels.append(PairLabel(np.asarray(a.tokens), np.asarray(b.tokens),
                                "a" if int(a.tokens[0]) >= int(b.tokens[0]) else "b"))
    config = RewardModelConfig(epochs=3, ensemble_size=3, head_hidden=8, min_comparisons=20, prior="unused")
    return save_reward_model(train_reward_model(labels, [], config, prior=prior_dir, log=None), out_dir)


class FakeEnsemble:
    """Scores chosen by the test, by melody id (the store puts ``melody_id`` in each melody's metadata)."""

    def __init__(self, scores: dict[int, float]):
        self.scores = scores

    def score_batch(self, melodies):
        return np.array([self.scores[m.metadata["melody_id"]] for m in melodies])


@pytest.fixture()
def experiment_db(tmp_path):
    """Experiment ``exp``: prior pool (round 0, 4 melodies), tuned pool (round 1, 3 melodies),
    plus an unrelated tag; people's and a simulated listener's comparisons."""
    url = f"sqlite:///{tmp_path / 'stats.sqlite3'}"
    store = open_store(url)
    rng = np.random.default_rng(1)
    p = store.add_melodies([random_melody(rng, 16) for _ in range(4)], "exp/round-0", model="prior",
                           experiment="exp").ids
    t = store.add_melodies([random_melody(rng, 16) for _ in range(3)], "exp/round-1",
                           model="exp/round-0/policy", model_kind="policy", experiment="exp").ids
    m = store.add_melodies([random_melody(rng, 16) for _ in range(2)], "misc").ids
    ann, bob = store.sign_in("Ann").id, store.sign_in("Bob").id
    sim = store.sign_in("sim:likes_high", kind="simulated").id

    def compare(rater, a, b, choice, **kw):
        store.submit_comparison(new_client_id(), rater, a, b, choice, "a", **kw)

    compare(ann, t[0], p[0], "a")                  # tuned wins
    compare(ann, p[1], t[1], "a")                  # tuned loses
    compare(ann, t[2], p[2], "tie")                # tie
    compare(bob, p[3], t[0], "b")                  # tuned wins
    compare(bob, t[1], p[0], "skip")               # skip: ignored
    compare(ann, t[0], p[0], "b", is_repeat=True)  # deliberate repeat: left out
    compare(sim, t[0], p[1], "b")                  # simulated listener: left out
    compare(ann, p[0], p[1], "a")                  # within the prior's pool: accuracy only
    compare(ann, m[0], m[1], "a")                  # another tag: outside the experiment
    return store, p, t, m


def test_round_tags_are_parsed():
    assert parse_round_tag("exp/round-3") == ("exp", 3)
    assert parse_round_tag("a/b/round-0") == ("a/b", 0)
    assert parse_round_tag("tuned") is None


def test_people_win_rate_of_tuned_against_prior(experiment_db):
    store, *_ = experiment_db
    (row,) = people_win_rates(store)
    assert (row.experiment, row.round, row.tuned_tag, row.prior_tag) == ("exp", 1, "exp/round-1", "exp/round-0")
    assert (row.wins, row.ties, row.losses, row.skips, row.comparisons, row.raters) == (2, 1, 1, 1, 4, 2)
    assert row.win_rate == pytest.approx(2.5 / 4)
    assert row.policy == "exp/round-0/policy"


def test_a_round_without_people_comparisons_has_no_win_rate(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    rng = np.random.default_rng(0)
    for k in range(3):
        store.add_melodies([random_melody(rng, 16) for _ in range(2)], f"e/round-{k}", experiment="e")
    rows = people_win_rates(store)
    assert [(r.round, r.win_rate, r.comparisons) for r in rows] == [(1, None, 0), (2, None, 0)]
    assert reward_model_accuracy_on_people(store, FakeEnsemble({}))["accuracy"] is None


def test_accuracy_on_people_with_known_scores(experiment_db):
    store, p, t, m = experiment_db
    # right on (t0>p0), (p3<t0), (p0>p1); wrong on (p1 vs t1: person chose p1) and on misc
    scores = {p[0]: 0.0, p[1]: -1.0, p[2]: 0.0, p[3]: 0.0, t[0]: 2.0, t[1]: 3.0, t[2]: 0.0,
              m[0]: 0.0, m[1]: 5.0}
    fake = FakeEnsemble(scores)
    everything = reward_model_accuracy_on_people(store, fake)
    assert (everything["decided"], everything["ties"], everything["skips"]) == (5, 1, 1)
    assert everything["accuracy"] == pytest.approx(3 / 5)
    assert everything["raters"] == 2
    only_exp = reward_model_accuracy_on_people(store, fake, experiment="exp")
    assert (only_exp["decided"], only_exp["ties"], only_exp["comparisons"]) == (4, 1, 5)
    assert only_exp["accuracy"] == pytest.approx(3 / 4)

    def sig(x):
        return 1 / (1 + math.exp(-x))
    # (t0 a p0), (p1 a t1), (t2 tie p2), (p3 b t0), (p0 a p1)
    expected = -np.mean([math.log(sig(2)), math.log(sig(-4)), 0.5 * math.log(sig(0)) + 0.5 * math.log(sig(0)),
                         math.log(1 - sig(-2)), math.log(sig(1))])
    assert only_exp["log_loss"] == pytest.approx(expected)


def test_latest_reward_model_skips_missing_and_corrupt_directories(experiment_db, tiny_prior_dir, tmp_path):
    store, *_ = experiment_db
    clear_reward_model_cache()
    good = tiny_reward_model(tiny_prior_dir, tmp_path / "exp-rm0")
    corrupt = tmp_path / "broken-rm0"
    corrupt.mkdir()
    (corrupt / CONFIG_FILE).write_text("{not json")
    store.register_model("exp/round-0/reward-model", kind="reward-model",
                         config={"experiment": "exp", "round": 0}, path=str(good))
    store.register_model("exp/round-1/reward-model", kind="reward-model",
                         config={"experiment": "exp", "round": 1}, path=str(tmp_path / "gone"))
    store.register_model("broken/round-0/reward-model", kind="reward-model",
                         config={"experiment": "broken", "round": 0}, path=str(corrupt))
    latest = {m.experiment: m for m in latest_reward_models(store)}
    assert latest["exp"].round == 0 and latest["exp"].ensemble is not None
    assert len(latest["exp"].problems) == 1 and "exp/round-1/reward-model" in latest["exp"].problems[0]
    assert latest["broken"].ensemble is None and "broken/round-0" in latest["broken"].problems[0]
    # cached per directory: the same object on the next call
    assert load_reward_model_cached(good) is latest["exp"].ensemble
    # a directory path works as well as a loaded ensemble, with real scores
    by_path = reward_model_accuracy_on_people(store, good, experiment="exp")
    by_model = reward_model_accuracy_on_people(store, latest["exp"].ensemble, experiment="exp")
    assert by_path == by_model and by_path["decided"] == 4 and 0 <= by_path["accuracy"] <= 1
    summaries = {s.experiment: s for s in experiment_summaries(store)}
    assert summaries["exp"].accuracy == by_path
    assert summaries["exp"].win_rates[0].win_rate == pytest.approx(0.625)
    assert summaries["broken"].accuracy is None and summaries["broken"].win_rates == []
    with pytest.raises(RLComposerError):
        load_reward_model_cached(tmp_path / "gone")


def test_cross_tag_pairs_take_one_melody_of_each_tag(experiment_db):
    store, p, t, _ = experiment_db
    rater = store.sign_in("Cleo").id
    strategy = CrossTagSelection(repeat_share=0.0, tags=("exp/round-1", "exp/round-0"), seed=0)
    assert isinstance(strategy, SelectionStrategy)
    seen = set()
    for _ in range(len(p) * len(t)):
        item = strategy.next_item(store, rater, "pair")
        a, b = item.melody_ids
        assert {a in t, b in t} == {True, False} and {a in p, b in p} == {True, False}
        store.submit_comparison(new_client_id(), rater, a, b, "a", "a")
        seen.add(frozenset(item.melody_ids))
    assert len(seen) == len(p) * len(t)
    assert strategy.next_item(store, rater, "pair") is None
    single = strategy.next_item(store, rater, "single")
    assert single.melody_ids[0] in set(p) | set(t)
    with pytest.raises(RLComposerError):
        CrossTagSelection(tags=("exp/round-1",))
    with pytest.raises(RLComposerError):
        CrossTagSelection(tags=("x", "x"))
