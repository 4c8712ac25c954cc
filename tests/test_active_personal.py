"""Active selection per rater with a personal reward model: each rater's next pair is where the
model is least sure of that rater's own taste (tiny prior, temporary SQLite)."""

from __future__ import annotations

import numpy as np
import pytest
from test_listeners import prior_like_melodies
from test_personal_reward import EPOCHS, answer_pairs, opposite

from rlcomposer.cli import main
from rlcomposer.feedback.selection import ActiveSelection
from rlcomposer.feedback.store import open_store
from rlcomposer.feedback.study import StudySelection, StudySpec, create_study
from rlcomposer.preferences.listeners import lyrical
from rlcomposer.preferences.personal_reward import load_personal_reward_model
from rlcomposer.preferences.personal_uncertainty import WEIGHT_SAMPLES, weight_draws
from rlcomposer.preferences.reward_model_cache import (
    clear_reward_model_cache,
    load_reward_model_cached,
)

RATERS = ("sim:lyrical", "sim:opposite")


@pytest.fixture(scope="module")
def personal(tmp_path_factory, tiny_prior_dir):
    """A personal model fitted on sim:lyrical and sim:opposite (opposite tastes, 80 pairs each)."""
    folder = tmp_path_factory.mktemp("active-personal")
    url = f"sqlite:///{folder / 'train.sqlite3'}"
    store = open_store(url)
    store.add_melodies(prior_like_melodies(60, seed=3), "pool", model="test")
    answer_pairs(store, "sim:lyrical", lyrical, 80, seed=1)
    answer_pairs(store, "sim:opposite", opposite, 80, seed=2)
    out = folder / "personal"
    code = main(["reward", "train", "--per-rater", "--db", url, "--out", str(out), "--quiet", "--json",
                 "--set", f"prior={tiny_prior_dir}", *EPOCHS, "--set-personal", "penalty=1"])
    assert code == 0
    return out, load_personal_reward_model(out)


@pytest.fixture()
def pool(tmp_path):
    """A fresh study database: 12 new melodies, the model's two raters and a newcomer signed in."""
    store = open_store(f"sqlite:///{tmp_path / 'study.sqlite3'}")
    ids = store.add_melodies(prior_like_melodies(12, seed=21), "pool", model="test").ids
    raters = {name: store.sign_in(name, kind="simulated").id for name in (*RATERS, "sim:newcomer")}
    return store, ids, raters


def widest_pair(store, ids, scores_of) -> set[int]:
    """By hand: the pair of ``ids`` (one shape) with the largest variance of P(A beats B) across
    the rows of ``scores_of(melodies)``."""
    records, shapes = store.get_melodies(ids), store.melody_shapes()
    scores = scores_of([records[i].melody for i in ids])
    best, widest = None, -1.0
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if shapes[ids[i]] != shapes[ids[j]]:
                continue
            variance = float((1 / (1 + np.exp(-(scores[:, i] - scores[:, j])))).var())
            if variance > widest:
                best, widest = {ids[i], ids[j]}, variance
    return best


def test_rater_samples_are_members_plus_the_raters_correction(personal):
    _, model = personal
    melodies = prior_like_melodies(10, seed=5)
    members = model.population.member_scores(melodies)
    population, phi = model.base_rewards(melodies)
    for name in RATERS:
        samples = model.member_scores(melodies, name)
        assert samples.shape == (members.shape[0] * WEIGHT_SAMPLES, len(melodies))
        # antithetic draws: the samples average to the rater's reward (without pessimism)
        assert np.allclose(samples.mean(axis=0), model.score_batch(melodies, name, pessimism=0.0))
        index = model.rater_index(name)
        draws = model.weights[index] + weight_draws(model.covariances[index], WEIGHT_SAMPLES, index)
        k, s = 1, 3  # member k with weight draw s: s_k + w_s . phi, its population entry read from member k
        member_phi = phi.copy()
        member_phi[:, 0] = members[k]
        assert np.allclose(samples[k * WEIGHT_SAMPLES + s], members[k] + member_phi @ draws[s])
    assert np.allclose(model.member_scores(melodies), members)  # no rater: the population's members


def test_each_rater_gets_the_pair_of_their_own_uncertainty(personal, pool):
    _, model = personal
    store, ids, raters = pool
    strategy = ActiveSelection(model, candidate_pairs=256, rng=0)
    assert strategy.per_rater
    chosen = {}
    for name in RATERS:
        item = strategy.next_item(store, raters[name], "pair")
        expected = widest_pair(store, ids, lambda melodies, name=name: model.member_scores(melodies, name))
        assert set(item.melody_ids) == expected
        chosen[name] = set(item.melody_ids)
    assert chosen[RATERS[0]] != chosen[RATERS[1]]  # opposite tastes, different questions
    assert strategy.note == ""  # both raters have their own uncertainty
    assert set(strategy._scores) == set(RATERS)  # scores cached per rater


def test_a_newcomer_gets_the_populations_uncertainty_and_is_told(personal, pool):
    _, model = personal
    store, ids, raters = pool
    said = []
    strategy = ActiveSelection(model, candidate_pairs=256, rng=0, log=said.append)
    item = strategy.next_item(store, raters["sim:newcomer"], "pair")
    assert set(item.melody_ids) == widest_pair(store, ids, model.member_scores)
    assert "'sim:newcomer' is not in" in strategy.note and "population's uncertainty" in strategy.note
    strategy.next_item(store, raters["sim:newcomer"], "pair", exclude=[item])
    assert said == [strategy.note]  # told once per rater


def test_a_study_with_a_personal_model_serves_per_rater_pairs(personal, pool):
    directory, model = personal
    store, ids, raters = pool
    study = create_study(store, StudySpec("per-rater", pool_tags=("pool",), selection="active",
                                          reward_model=str(directory)))
    clear_reward_model_cache()
    selection = StudySelection(study, load_reward_model_cached)
    strategy = selection.strategy(store)
    assert isinstance(strategy, ActiveSelection) and strategy.per_rater and selection.note == ""
    for name in RATERS:
        item = strategy.next_item(store, raters[name], study.spec.kind)
        assert set(item.melody_ids) == widest_pair(
            store, ids, lambda melodies, name=name: model.member_scores(melodies, name))


def test_simulated_listener_answers_active_pairs_of_a_personal_model(personal, pool, capsys):
    """``ratings simulate --strategy active --reward`` takes a personal model's directory."""
    directory, _ = personal
    store, _, _ = pool
    code = main(["ratings", "simulate", "--listener", "lyrical", "--pairs", "4", "--strategy", "active",
                 "--reward", str(directory), "--db", store.url, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("sim:lyrical: 4 comparisons")
