"""Shared fixtures: a tiny untrained prior, so tests need neither the corpus nor training."""

from __future__ import annotations

import os

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


@pytest.fixture(scope="session")
def metre_prior_dir(tmp_path_factory):
    """A tiny untrained prior conditioned on every metre and mode, with pick-ups."""
    from rlcomposer.music.keys import MODES
    from rlcomposer.music.metre import METRE_NAMES

    torch.manual_seed(0)
    prior = MelodyPrior(PriorConfig(embedding_dim=8, hidden_size=16, metres=METRE_NAMES, modes=MODES, pickups=True))
    return save_model_dir(tmp_path_factory.mktemp("models") / "metre-prior", "prior", prior.config,
                          prior.state_dict())


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server the database tests use (``$RLCOMPOSER_TEST_POSTGRES_URL`` or the
    default): they are skipped when it is not reachable, and fail in CI, which runs them on it."""
    from rlcomposer.feedback.testing import (
        DEFAULT_POSTGRES_SERVER,
        ENV_TEST_POSTGRES_URL,
        postgres_reachable,
    )

    server = os.environ.get(ENV_TEST_POSTGRES_URL, DEFAULT_POSTGRES_SERVER)
    if not postgres_reachable(server):
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {server} is not reachable (CI runs the database tests on it)")
        pytest.skip(f"PostgreSQL at {server} is not reachable")
    return server
