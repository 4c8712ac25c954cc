"""The reward model: training on simulated labels, ties and skips, stars, early stopping,
temperature scaling, k-fold metrics, descriptors, save/load (and the first format), errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_listeners import prior_like_melodies

from rlcomposer.checkpoints import CheckpointError, save_model_dir
from rlcomposer.config import config_to_dict
from rlcomposer.music.melody import Melody, pitch_token
from rlcomposer.preferences.descriptors import (
    DESCRIPTOR_NAMES,
    describe,
    reference_statistics,
    standardise,
)
from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener, rhythmic
from rlcomposer.preferences.reward_functions import resolve_reward, score_melodies
from rlcomposer.preferences.reward_model import (
    LEGACY_CONFIG,
    MelodyEncoder,
    PairLabel,
    RewardEnsemble,
    RewardModelConfig,
    RewardModelError,
    StarLabel,
    evaluate_pairs,
    fit_temperature,
    load_reward_model,
    load_training_data,
    prior_fingerprint,
    save_reward_model,
    train_reward_model,
)
from rlcomposer.prior.model import MelodyPrior, PriorConfig, load_prior
from rlcomposer.validation import ValidationError

FAST = RewardModelConfig(epochs=40, ensemble_size=3, head_hidden=32, reference_melodies=64, prior="unused")


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
    assert ensemble.metrics["held_out"]["accuracy"] > 0.6  # 300 noisy labels, each held out once
    fresh = melodies[300:]
    scores = ensemble.score_batch(fresh)
    truth = listener.scores(fresh)
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 100, 500), rng.integers(0, 100, 500)
    keep = np.abs(truth[a] - truth[b]) > 0.1 * listener.spread
    accuracy = np.mean(((scores[a] - scores[b]) > 0)[keep] == ((truth[a] - truth[b]) > 0)[keep])
    assert accuracy > 0.65


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
    """Stars that favour some melodies raise their scores, beside comparisons that say nothing (ties)."""
    melodies = prior_like_melodies(60, seed=4)
    notes = np.array([np.count_nonzero(m.tokens >= 2) for m in melodies])
    favoured = notes >= np.quantile(notes, 2 / 3)  # the busiest third
    pairs = [PairLabel(melodies[i].tokens, melodies[i + 30].tokens, "tie") for i in range(30)]
    stars = [StarLabel(m.tokens, 5 if favoured[i] else 1, "sim:x") for i, m in enumerate(melodies)]
    config = RewardModelConfig(epochs=60, learning_rate=3e-3, early_stopping=False, calibrate=False, cv_folds=0,
                               reference_melodies=64, prior="unused")
    with_stars = train_reward_model(pairs, stars, config, prior, log=None)
    without = train_reward_model(pairs, [], config, prior, log=None)
    assert with_stars.metrics["data"]["stars"] == 60 and without.metrics["data"]["stars"] == 0

    def gap(model):
        scores = model.score_batch(melodies)
        return scores[favoured].mean() - scores[~favoured].mean()

    assert abs(gap(without)) < 0.1  # ties alone say nothing about the busy third
    assert gap(with_stars) > 0.25
    scores = with_stars.score_batch(melodies)  # a favoured melody mostly outscores another
    assert np.mean(scores[favoured][:, None] > scores[~favoured][None, :]) > 0.8


def test_too_few_ratings(prior):
    melodies = prior_like_melodies(10)
    labels = [PairLabel(melodies[i].tokens, melodies[i + 1].tokens, "a") for i in range(5)]
    labels += [PairLabel(melodies[0].tokens, melodies[1].tokens, "skip")] * 30
    with pytest.raises(RewardModelError, match="5 usable comparisons.*at least 20 are needed"):
        train_reward_model(labels, [], RewardModelConfig(prior="unused"), prior, log=None)


def test_config_checks():
    for bad in ({"cv_folds": 1}, {"summary": ("median",)}, {"summary": (), "descriptors": False},
                {"input_norm": "batch"}, {"summary_components": 4, "summary": ()},
                {"summary_components": 20, "reference_melodies": 16, "summary": ("mean",)}):
        with pytest.raises(RewardModelError):
            RewardModelConfig(**bad)


@pytest.mark.parametrize("bad, message", [
    ({"ensemble_size": 2}, "ensemble_size must be from 3 to 1000, got 2"),
    ({"validation_fraction": 0.0}, r"validation_fraction must be in \(0, 0.9\), got 0.0"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
    ({"head_hidden": -1}, "head_hidden must be from 0 to 4096, got -1"),
    ({"reference_melodies": 8}, "reference_melodies must be from 16 to 100000, got 8"),
])
def test_a_reward_model_setting_out_of_range_is_refused_with_its_range(bad, message):
    with pytest.raises(ValidationError, match=message):
        RewardModelConfig(**bad)


def test_temperature_scaling_lowers_log_loss_when_overconfident(labelled, small_prior):
    # the function: logits 4x too large are tempered by about 4
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(float)
    t = fit_temperature(4 * z, y)
    assert 3.2 < t < 5.0
    before, after = evaluate_pairs(1 / (1 + np.exp(-4 * z)), y), evaluate_pairs(1 / (1 + np.exp(-4 * z / t)), y)
    assert after["log_loss"] < before["log_loss"] - 0.1 and after["ece"] < before["ece"]
    # in training: heads left to overfit (fixed epochs, no regularisation) are overconfident on
    # held-out comparisons; the temperature fitted out of bag in each fold brings the log-loss down
    config = RewardModelConfig(epochs=40, early_stopping=False, dropout=0.0, weight_decay=0.0, head_hidden=64,
                               learning_rate=3e-3, summary=("mean", "max", "last", "tokens"), ensemble_size=3,
                               reference_melodies=64, prior="unused")
    model = train_reward_model(labelled[2], [], config, small_prior, log=None)
    selection, held = model.metrics["selection"], model.metrics["held_out"]
    assert selection["temperature"] > 1.2 and float(model.temperature) == pytest.approx(selection["temperature"])
    assert all(t > 1.0 for t in selection["fold_temperatures"])
    assert held["log_loss"] < model.metrics["held_out_uncalibrated"]["log_loss"] - 0.05
    # the temperature divides every score: P(A beats B) is the sigmoid of the reward difference
    melodies = labelled[0][:20]
    p = model.preference_probability(melodies[:10], melodies[10:])
    scores = model.score_batch(melodies)
    assert np.allclose(p, 1 / (1 + np.exp(-(scores[:10] - scores[10:]))), atol=1e-6)


def test_early_stopping_picks_an_epoch(labelled, small_prior):
    config = RewardModelConfig(epochs=300, patience=5, ensemble_size=3, cv_folds=0, reference_melodies=64,
                               prior="unused")
    model = train_reward_model(labelled[2], [], config, small_prior, log=None)
    selection = model.metrics["selection"]
    assert 1 <= selection["epoch"] <= selection["epochs_run"] < 300  # stopped, and kept an earlier epoch
    assert selection["epochs_run"] - selection["epoch"] == 5
    assert selection["oob_pairs"] > 100 and np.isfinite(selection["oob_log_loss"])
    fixed = train_reward_model(labelled[2], [], RewardModelConfig(
        epochs=7, early_stopping=False, ensemble_size=3, cv_folds=0, reference_melodies=64, prior="unused"),
        small_prior, log=None)
    assert fixed.metrics["selection"]["epoch"] == fixed.metrics["selection"]["epochs_run"] == 7


def test_k_fold_metrics(ensemble):
    held = ensemble.metrics["held_out"]
    assert held["method"] == "5-fold cross-validation" and held["folds"] == 5 and held["pairs"] == 300
    for key in ("accuracy", "accuracy_ci95", "log_loss", "log_loss_ci95", "brier", "brier_ci95", "ece",
                "ece_ci95", "reliability"):
        assert held[key] is not None, key
    low, high = held["accuracy_ci95"]
    assert low < held["accuracy"] < high and high - low < 0.15
    assert 0 <= held["brier"] <= 1 and held["brier_ci95"][0] <= held["brier"] <= held["brier_ci95"][1]
    assert sum(held["reliability"]["count"]) == held["decided_pairs"]
    assert len(held["reliability"]["edges"]) == ensemble.config.calibration_bins + 1
    folds = ensemble.metrics["folds"]
    assert len(folds) == 5 and sum(f["pairs"] for f in folds) == 300
    assert all(1 <= f["epoch"] <= ensemble.config.epochs and f["temperature"] > 0 for f in folds)
    assert ensemble.metrics["data"]["train_comparisons"] == 300  # the final model saw every comparison
    # the Wilson interval of a proportion
    result = evaluate_pairs(np.array([0.9] * 8 + [0.1] * 2), np.ones(10))
    assert result["accuracy"] == 0.8 and result["accuracy_ci95"] == pytest.approx([0.49, 0.943], abs=2e-3)


def test_descriptors_are_finite_and_standardised(ensemble, labelled):
    melodies = prior_like_melodies(300, seed=5)
    raw = describe(melodies)
    assert raw.shape == (300, len(DESCRIPTOR_NAMES)) and np.all(np.isfinite(raw))
    mean, std = reference_statistics(raw)
    z = standardise(raw, mean, std)
    assert np.all(np.abs(z) <= 5)  # clipped: a rare event is at most 5 spreads out
    unclipped = (raw.std(0) > 1e-2) & np.all(np.abs(z) < 5, axis=0)
    assert unclipped.sum() > 25
    assert np.allclose(z[:, unclipped].mean(0), 0, atol=1e-6) and np.allclose(z[:, unclipped].std(0), 1, atol=1e-6)
    odd = [Melody(np.zeros(64, dtype=int)), Melody(np.ones(64, dtype=int)),
           Melody(np.array([pitch_token(60)] + [1] * 63)), Melody(np.array([pitch_token(60), 0, pitch_token(84)])),
           Melody(np.array([pitch_token(48)] * 64))]
    assert np.all(np.isfinite(describe(odd)))
    # inside the reward model: standardised on prior melodies, finite, clipped
    inputs = ensemble.inputs([m.tokens for m in labelled[0][:50]] + [m.tokens for m in odd]).numpy()
    assert np.all(np.isfinite(inputs)) and np.all(np.abs(inputs) <= 5)
    same_length = [m for m in odd if m.num_steps == 64]  # it scores the shape it was trained on only
    assert np.all(np.isfinite(ensemble.score_batch(same_length)))


def test_encoder_is_the_priors_own_network(small_prior):
    encoder = MelodyEncoder.from_prior(small_prior, ("mean", "last"))
    assert all(torch.equal(a, b) for a, b in zip(encoder.prior.state_dict().values(),
                                                  small_prior.state_dict().values(), strict=True))
    tokens = torch.from_numpy(np.stack([m.tokens for m in prior_like_melodies(4, seed=6)])).long()
    features = encoder(tokens, torch.full((4,), tokens.shape[1]))
    bos = torch.full((4, 1), small_prior.config.bos_token)
    with torch.no_grad():
        _, hidden = small_prior(torch.cat([bos, tokens], dim=1))  # the prior's forward over the whole melody
    assert torch.allclose(features[:, small_prior.config.hidden_size:], hidden[-1], atol=1e-5)


def test_save_load_round_trip(ensemble, tmp_path, labelled, small_prior):
    out = save_reward_model(ensemble, tmp_path / "rm")
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "reward-model" and config["prior_hash"] == prior_fingerprint(small_prior)
    assert config["training"] == json.loads(json.dumps(config_to_dict(ensemble.config)))
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    loaded = load_reward_model(out, expected_prior=small_prior)
    melodies = labelled[0][:10]
    assert np.allclose(loaded.member_scores(melodies), ensemble.member_scores(melodies), atol=1e-6)
    assert np.allclose(loaded.preference_probability(melodies[:5], melodies[5:]),
                       ensemble.preference_probability(melodies[:5], melodies[5:]), atol=1e-6)
    assert float(loaded.temperature) == float(ensemble.temperature) != 1.0
    assert torch.equal(loaded.input_mean, ensemble.input_mean) and loaded.config == ensemble.config
    assert loaded.metrics["held_out"] == ensemble.metrics["held_out"]
    reward = resolve_reward(str(out))
    assert isinstance(reward, RewardEnsemble)
    # weights only: the file is a dict of tensors
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_first_format_checkpoints_still_load(prior, tmp_path):
    """A reward model saved before descriptors and calibration (one ``heads.k.net`` per member, the
    encoder's own embedding and GRU) loads with the same scores."""
    melodies = prior_like_melodies(40, seed=7)
    pairs = [PairLabel(melodies[i].tokens, melodies[i + 20].tokens, "a" if i % 3 else "b") for i in range(20)]
    model = train_reward_model(pairs, [], RewardModelConfig(**{**config_to_dict(LEGACY_CONFIG), "epochs": 3,
                                                               "prior": "unused"}), prior, log=None)
    state, old = model.state_dict(), {}
    for key, value in state.items():
        if key.startswith("encoder.prior.") and ".head." not in key:
            old["encoder." + key[len("encoder.prior."):]] = value
    for k in range(3):
        old.update({f"heads.{k}.net.0.weight": state["heads.norm_weight"][k],
                    f"heads.{k}.net.0.bias": state["heads.norm_bias"][k],
                    f"heads.{k}.net.1.weight": state["heads.weight1"][k].t(),
                    f"heads.{k}.net.1.bias": state["heads.bias1"][k],
                    f"heads.{k}.net.3.weight": state["heads.weight2"][k].view(1, -1),
                    f"heads.{k}.net.3.bias": state["heads.bias2"][k].view(1),
                    f"heads.{k}.star_scale": state["heads.star_scale"][k],
                    f"heads.{k}.star_offset": state["heads.star_offset"][k]})
    old["offset"] = state["offset"]
    out = save_model_dir(tmp_path / "old", "reward-model", model.prior_config, old, model.config,
                         extra_config={"prior_hash": model.prior_hash})
    config = json.loads((out / "config.json").read_text())
    config["training"] = {k: v for k, v in config["training"].items() if k in (  # the first format's keys
        "ensemble_size", "epochs", "learning_rate", "weight_decay", "validation_fraction", "star_weight",
        "freeze_encoder", "encoder_learning_rate", "head_hidden", "batch_size", "min_comparisons",
        "calibration_bins", "seed", "threads", "prior")}
    (out / "config.json").write_text(json.dumps(config))
    loaded = load_reward_model(out)
    assert loaded.config.summary == ("mean", "max", "last", "tokens") and not loaded.config.descriptors
    assert np.allclose(loaded.member_scores(melodies), model.member_scores(melodies), atol=1e-5)


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
