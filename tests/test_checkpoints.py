"""Model directories: weights-only files that fail with a clear message when broken."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rlcomposer.checkpoints import CheckpointError, read_model_dir
from rlcomposer.prior.model import SHIPPED_PRIOR_DIR, load_prior


def test_shipped_prior_loads_weights_only_with_its_config():
    config = json.loads((SHIPPED_PRIOR_DIR / "config.json").read_text())
    assert config["kind"] == "prior"
    state = torch.load(SHIPPED_PRIOR_DIR / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_prior()
    assert model.config.hidden_size == config["model"]["hidden_size"]
    assert (SHIPPED_PRIOR_DIR / "model.pt").stat().st_size < 8 * 2**20


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_prior(tmp_path / "nope")


def test_corrupt_weights(tmp_path, tiny_prior_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_prior_dir, broken)
    (broken / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_prior(broken)


def test_pickled_code_is_refused(tmp_path, tiny_prior_dir):
    evil = tmp_path / "evil"
    shutil.copytree(tiny_prior_dir, evil)
    torch.save({"weights": torch.zeros(1), "payload": object()}, evil / "model.pt")
    with pytest.raises(CheckpointError):
        load_prior(evil)


def test_weights_that_do_not_match_the_config(tmp_path, tiny_prior_dir):
    other = tmp_path / "other"
    shutil.copytree(tiny_prior_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["hidden_size"] = 64
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match"):
        load_prior(other)


def test_wrong_kind_and_missing_config(tmp_path, tiny_prior_dir):
    other = tmp_path / "other"
    shutil.copytree(tiny_prior_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["kind"] = "reward-model"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="expected prior"):
        load_prior(other)
    (other / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        read_model_dir(other)
