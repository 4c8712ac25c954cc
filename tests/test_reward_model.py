"""The reward model: training on simulated labels, ties and skips, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_listeners import prior_like_melodies

from rlcomposer.checkpoints import CheckpointError, save_model_dir
from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener, rhythmic
from rlcomposer.preferences.reward_functions import resolve_reward, score_melodies
from rlcomposer.preferences.reward_model import (
    PairLabel,
    RewardEnsemble,
    RewardModelConfig,
    RewardModelError,
    StarLabel,
    evaluate_pairs,
    load_reward_model,
    load_training_data,
    prior_fingerprint,
    save_reward_model,
    train_reward_model,
)
from rlcomposer.prior.model import MelodyPrior, PriorConfig, load_prior

FAST = RewardModelConfig(epochs=40, ensemble_size=3, head_hidden=32, prior="unused")


@pytest.fixture(scope="module")
def prior(tiny_prior_dir):
    return load_prior(tiny_prior_dir)


@pytest.fixture(scope="module")
def small_prior():
    """Untrained, but wide enough that its random GRU features carry the melody's shape."""
    torch.manual_seed(0)
    return MelodyPrior(PriorConfig(embedding_dim=16, hidden_size=64)).eval()


@pytest.fixture(scope="module")
def labelled():
    melodies = prior_like_melodies(400, seed=10)
    listener = SimulatedListener(rhythmic, "rhythmic", ListenerNoise(), rng=np.random.default_rng(0))
    listener.calibrate(melodies)
    rng = np.random.default_rng(1)
    labels = []
    for _ in range(300):
        i, j = rng.choice(300, 2, replace=False)
        labels.append(PairLabel(melodies[i].tokens, melodies[j].tokens,
                                listener.compare(melodies[i], melodies[j]), "sim:rhythmic"))
    return melodies, listener, labels


@pytest.fixture(scope="module")
def ensemble(labelled, small_prior):
    return train_reward_model(labelled[2], [], FAST, small_prior, log=None)


def test_ranks_held_out_pairs_above_chance(ensemble, labelled):
    melodies, listener, _ = labelled
    assert ensemble.metrics["held_out"]["accuracy"] > 0.55  # 60 noisy held-out labels
    fresh = melodies[300:]
    scores = ensemble.score_batch(fresh)
    truth = listener.scores(fresh)
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 100, 500), rng.integers(0, 100, 500)
    keep = np.abs(truth[a] - truth[b]) > 0.1 * listener.spread
    accuracy = np.mean(((scores[a] - scores[b]) > 0)[keep] == ((truth[a] - truth[b]) > 0)[keep])
    assert accuracy > 0.57  # an untrained prior: random GRU features; the shipped prior does far better


def test_ensemble_interfaces(ensemble, labelled):
    melodies = labelled[0][:20]
    members = ensemble.member_scores(melodies)
    assert members.shape == (3, 20)
    assert np.allclose(ensemble.score_batch(melodies), members.mean(0), atol=1e-6)
    assert ensemble(melodies[0]) == pytest.approx(members[:, 0].mean(), abs=1e-5)
    variance = ensemble.preference_variance(melodies[:10], melodies[10:])
    assert variance.shape == (10,) and np.all(variance >= 0)
    assert np.all(ensemble.preference_variance(melodies[:3], melodies[:3]) < 1e-12)
    assert score_melodies(ensemble, melodies).shape == (20,)
    data = ensemble.metrics["data"]
    assert data["raters"] == ["sim:rhythmic"] and data["usable_comparisons"] == 300
    for key in ("accuracy", "log_loss", "ece"):
        assert ensemble.metrics["held_out"][key] is not None


def test_ties_count_half_and_skips_are_ignored(prior):
    melodies = prior_like_melodies(30, seed=3)
    base = [PairLabel(melodies[i].tokens, melodies[i + 1].tokens, "a") for i in range(25)]
    skips = [PairLabel(melodies[i + 1].tokens, melodies[i].tokens, "skip") for i in range(25)]
    config = RewardModelConfig(epochs=5, prior="unused", min_comparisons=20)
    with_skips = train_reward_model(base + skips, [], config, prior, log=None)
    without = train_reward_model(base, [], config, prior, log=None)
    assert with_skips.metrics["data"]["skipped"] == 25
    assert np.allclose(with_skips.score_batch(melodies), without.score_batch(melodies), atol=1e-6)
    # evaluation: a tie is a ½ target in log-loss and not an accuracy point
    result = evaluate_pairs(np.array([0.5, 0.9]), np.array([0.5, 1.0]))
    assert result["decided_pairs"] == 1 and result["accuracy"] == 1.0
    assert result["log_loss"] == pytest.approx((np.log(2) - np.log(0.9)) / 2)
    # training: pairs that are all ties leave the scores nearly equal
    ties = [PairLabel(melodies[i].tokens, melodies[i + 1].tokens, "tie") for i in range(25)]
    tied = train_reward_model(ties, [], RewardModelConfig(epochs=30, prior="unused"), prior, log=None)
    assert np.ptp(tied.score_batch(melodies)) < np.ptp(without.score_batch(melodies))


def test_stars_train_alongside(prior):
    melodies = prior_like_melodies(60, seed=4)
    pairs = [PairLabel(melodies[i].tokens, melodies[i + 30].tokens, "a" if i % 2 else "b") for i in range(25)]
    stars = [StarLabel(m.tokens, 1 + i % 5, "sim:x") for i, m in enumerate(melodies)]
    model = train_reward_model(pairs, stars, RewardModelConfig(epochs=5, prior="unused"), prior, log=None)
    assert model.metrics["data"]["stars"] == 60


def test_too_few_ratings(prior):
    melodies = prior_like_melodies(10)
    labels = [PairLabel(melodies[i].tokens, melodies[i + 1].tokens, "a") for i in range(5)]
    labels += [PairLabel(melodies[0].tokens, melodies[1].tokens, "skip")] * 30
    with pytest.raises(RewardModelError, match="5 usable comparisons.*at least 20 are needed"):
        train_reward_model(labels, [], RewardModelConfig(prior="unused"), prior, log=None)


def test_config_checks():
    with pytest.raises(ValueError):
        RewardModelConfig(ensemble_size=2)
    with pytest.raises(ValueError):
        RewardModelConfig(validation_fraction=0.0)


def test_save_load_round_trip(ensemble, tmp_path, labelled, small_prior):
    out = save_reward_model(ensemble, tmp_path / "rm")
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "reward-model" and config["prior_hash"] == prior_fingerprint(small_prior)
    loaded = load_reward_model(out, expected_prior=small_prior)
    melodies = labelled[0][:10]
    assert np.allclose(loaded.member_scores(melodies), ensemble.member_scores(melodies), atol=1e-6)
    assert loaded.metrics["held_out"] == ensemble.metrics["held_out"]
    reward = resolve_reward(str(out))
    assert isinstance(reward, RewardEnsemble)
    # weights only: the file is a dict of tensors
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_foreign_and_corrupt_checkpoints_are_refused(ensemble, tmp_path, tiny_prior_dir):
    out = save_reward_model(ensemble, tmp_path / "rm")
    torch.manual_seed(1)
    other = MelodyPrior(PriorConfig(embedding_dim=16, hidden_size=64))
    with pytest.raises(CheckpointError, match="another prior"):
        load_reward_model(out, expected_prior=other)
    with pytest.raises(CheckpointError, match="another prior"):
        load_reward_model(out, expected_prior="0123456789abcdef")
    with pytest.raises(CheckpointError, match="is a prior, expected reward-model"):
        load_reward_model(tiny_prior_dir)
    (out / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_reward_model(out)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_reward(str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    save_model_dir(bad, "reward-model", ensemble.prior_config, {"x": torch.zeros(1)}, ensemble.config,
                   extra_config={"prior_hash": ensemble.prior_hash})
    with pytest.raises(CheckpointError, match="do not match"):
        load_reward_model(bad)


def test_load_training_data_from_store(tmp_path):
    from rlcomposer.feedback.store import new_client_id, open_store

    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    ids = store.add_melodies(prior_like_melodies(6), "t", model="m").ids
    person = store.sign_in("Ann")
    sim = store.sign_in("sim:lyrical", kind="simulated")
    store.submit_comparison(new_client_id(), person.id, ids[0], ids[1], "a", "a")
    store.submit_comparison(new_client_id(), sim.id, ids[2], ids[3], "tie", "b")
    store.submit_comparison(new_client_id(), sim.id, ids[2], ids[4], "skip", "b")
    store.submit_rating(new_client_id(), person.id, ids[5], 4)
    data = load_training_data(store)
    assert len(data.comparisons) == 3 and len(data.stars) == 1
    assert data.summary()["raters"] == ["Ann", "sim:lyrical"]
    assert np.array_equal(data.comparisons[0].tokens_a, store.get_melody(ids[0]).melody.tokens)
    only = load_training_data(store, rater="sim:lyrical")
    assert [c.choice for c in only.comparisons] == ["tie", "skip"] and not only.stars
    with pytest.raises(RewardModelError, match="no ratings"):
        load_training_data(store, rater="Bob")


def test_tune_refuses_a_reward_model_from_another_prior(ensemble, tmp_path, capsys):
    from rlcomposer.cli import main

    out = save_reward_model(ensemble, tmp_path / "rm")  # trained from small_prior, not the shipped one
    assert main(["tune", "--reward", str(out), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert "another prior" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "run").exists()
