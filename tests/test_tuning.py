"""rlcomposer tune: a run writes a usable policy, logs, plots and checkpoints; bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcomposer.checkpoints import read_model_dir
from rlcomposer.cli import main
from rlcomposer.config import ConfigError, load_config
from rlcomposer.errors import RLComposerError
from rlcomposer.music.theory import theory_reward
from rlcomposer.prior.generation import GenerationConfig, sample_melodies
from rlcomposer.prior.model import load_prior
from rlcomposer.prior.registry import resolve_model
from rlcomposer.rl.best_of_n import BestOfNModel
from rlcomposer.rl.environment import MelodyEnvConfig
from rlcomposer.rl.tuning import TuneConfig, tune

SMALL = dict(env=MelodyEnvConfig(num_bars=1, theory_motif=1.0, theory_in_key=1.0), n_envs=8,
             minibatch_episodes=4, total_timesteps=8 * 16 * 3, checkpoint_every=8 * 16)


def test_tuning_writes_policy_logs_plots_and_checkpoints(tmp_path, tiny_prior_dir):
    config = TuneConfig(prior=str(tiny_prior_dir), **SMALL)
    metrics = tune(config, tmp_path / "run", progress=False, log=lambda _: None)
    run = tmp_path / "run"
    files = read_model_dir(run)
    assert files.kind == "policy" and files.config["training"]["env"]["theory_motif"] == 1.0
    assert files.config["env"]["num_bars"] == 1
    for plot in ("reward.png", "kl.png"):
        assert (run / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and history[0]["kl_per_melody"] == pytest.approx(0.0, abs=1e-6)
    assert {"reward_theory_motif", "reward_kl_prior", "reward_total"} <= set(history[-1])
    assert any((run / "tb").rglob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "ppo_384_steps.zip"
    assert metrics["timesteps"] == 384
    # the policy samples like a prior
    model = resolve_model(str(run))
    melodies = sample_melodies(model, GenerationConfig(num_melodies=3, num_bars=1))
    assert len(melodies) == 3 and load_prior(run).config.vocab_size == 39


def test_resume_continues_from_a_checkpoint(tmp_path, tiny_prior_dir):
    config = TuneConfig(prior=str(tiny_prior_dir), **SMALL)
    tune(config, tmp_path / "run", progress=False, log=lambda _: None)
    longer = TuneConfig(prior=str(tiny_prior_dir), **{**SMALL, "total_timesteps": 8 * 16 * 5})
    metrics = tune(longer, tmp_path / "run", resume=tmp_path / "run" / "checkpoints" / "final.zip",
                   progress=False, log=lambda _: None)
    assert metrics["timesteps"] == 8 * 16 * 5


def test_bad_tuning_input(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'theory_jazz'"):
        load_config(TuneConfig, None, {"theory_jazz": 1.0})
    with pytest.raises(RLComposerError, match="nothing to tune"):
        tune(TuneConfig(total_timesteps=64), tmp_path / "x", progress=False)
    with pytest.raises(RLComposerError, match="algorithm"):
        TuneConfig(algorithm="a2c")


def test_best_of_n_picks_higher_reward_and_knows_its_kl(tiny_prior_dir):
    base = resolve_model(str(tiny_prior_dir))
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    plain = base.sample(50, 16, rng_a)
    best = BestOfNModel(base, theory_reward, 8).sample(50, 16, rng_b)
    assert np.mean([theory_reward(m) for m in best]) > np.mean([theory_reward(m) for m in plain])
    assert BestOfNModel(base, theory_reward, 1).kl_to_base_per_melody == 0.0
    assert BestOfNModel(base, theory_reward, 8).kl_to_base_per_melody == pytest.approx(np.log(8) - 7 / 8)


def test_cli_tune_with_a_reward_from_the_working_directory(tmp_path, tiny_prior_dir, monkeypatch, capsys):
    (tmp_path / "my_taste.py").write_text(
        "def high_notes(melody):\n    notes = melody.notes()\n"
        "    return sum(p for p, _, _ in notes) / max(len(notes), 1) / 84\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["tune", "--reward", "my_taste:high_notes", "--prior", str(tiny_prior_dir),
                 "--set", "num_bars=1", "--set", "n_envs=4", "--set", "minibatch_episodes=2",
                 "--total-timesteps", "128", "--out", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "reward_reward" in result["final"]
    assert main(["tune", "--reward", "my_taste:nope", "--out", str(tmp_path / "x")]) == 2
    assert "has no 'nope'" in capsys.readouterr().err
