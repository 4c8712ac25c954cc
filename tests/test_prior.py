"""The melody prior: causal, carries its state, and samples what it scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcomposer.music.melody import VOCAB_SIZE
from rlcomposer.prior.model import MelodyPrior, PriorConfig, load_prior
from rlcomposer.prior.training import PriorTrainingConfig, score_prior, train_prior


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MelodyPrior(PriorConfig(embedding_dim=16, hidden_size=32)).eval()


def test_step_by_step_equals_whole_sequence(model):
    tokens = torch.randint(0, VOCAB_SIZE, (3, 20))
    whole = model.sequence_logits(tokens)
    previous = torch.full((3,), model.config.bos_token)
    hidden = None
    for t in range(20):
        logits, hidden = model.step(previous, t, hidden)
        assert torch.allclose(logits, whole[:, t], atol=1e-5)
        previous = tokens[:, t]


def test_prediction_does_not_see_the_future(model):
    tokens = torch.randint(0, VOCAB_SIZE, (1, 16))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % VOCAB_SIZE
    assert torch.allclose(model.sequence_logits(tokens)[0, :11], model.sequence_logits(changed)[0, :11])


def test_sampling_is_seeded_and_in_vocabulary(model):
    a = model.sample(5, 32, torch.Generator().manual_seed(3))
    b = model.sample(5, 32, torch.Generator().manual_seed(3))
    assert a.shape == (5, 32) and np.array_equal(a, b)
    assert a.min() >= 0 and a.max() < VOCAB_SIZE


def test_top_k_one_is_greedy(model):
    tokens = model.sample(4, 16, torch.Generator().manual_seed(0), top_k=1)
    logits = model.sequence_logits(torch.as_tensor(tokens, dtype=torch.long))
    assert np.array_equal(logits.argmax(-1).numpy(), tokens)


def test_bad_sampling_arguments(model):
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, 4, torch.Generator(), temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        model.sample(1, 4, torch.Generator(), top_k=0)


def test_training_learns_a_pattern_and_saves_a_loadable_model(tmp_path):
    phrase = np.array([14, 1, 1, 1, 16, 1, 18, 1, 19, 1, 1, 1, 0, 1, 1, 1])
    sequences = [np.tile(phrase, 4) for _ in range(120)]
    config = PriorTrainingConfig(embedding_dim=16, hidden_size=32, max_epochs=8, batch_size=8,
                                 crop_bars=4, learning_rate=1e-2)
    model, metrics = train_prior(config, sequences[:100], sequences[100:110], sequences[110:],
                                 out_dir=tmp_path / "p", tensorboard_dir=tmp_path / "tb",
                                 progress=False, log=lambda _: None)
    assert metrics["test"]["accuracy"] > 0.9
    assert metrics["ngram_baseline"]["order"] >= 2
    loaded = load_prior(tmp_path / "p")
    assert loaded.config == model.config
    assert score_prior(loaded, sequences[110:]).nll_per_step == pytest.approx(
        metrics["test"]["nll_per_step"], rel=1e-5)
    assert any((tmp_path / "tb").iterdir())
