"""Typed configs: YAML and overrides in, clear errors for wrong keys and values."""

import pytest

from rlcomposer.config import ConfigError, config_to_dict, load_config, parse_overrides
from rlcomposer.prior.training import PriorTrainingConfig


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hidden_size: 128\nlearning_rate: 0.01\n")
    config = load_config(PriorTrainingConfig, path, parse_overrides(["learning_rate=0.002", "seed=7"]))
    assert (config.hidden_size, config.learning_rate, config.seed) == (128, 0.002, 7)
    assert config_to_dict(config)["hidden_size"] == 128


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hiden_size: 128\n")
    with pytest.raises(ConfigError, match="unknown key 'hiden_size'"):
        load_config(PriorTrainingConfig, path)


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="'batch_size'"):
        load_config(PriorTrainingConfig, None, {"batch_size": "many"})


def test_malformed_yaml_and_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(PriorTrainingConfig, path)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["seed"])
