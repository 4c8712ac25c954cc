"""Shared fixtures: a tiny untrained prior, so tests need neither the corpus nor training."""

from __future__ import annotations

import pytest
import torch

from rlcomposer.checkpoints import save_model_dir
from rlcomposer.prior.model import MelodyPrior, PriorConfig


@pytest.fixture(scope="session")
def tiny_prior_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = MelodyPrior(PriorConfig(embedding_dim=8, hidden_size=16))
    return save_model_dir(tmp_path_factory.mktemp("models") / "tiny-prior", "prior",
                          model.config, model.state_dict())
