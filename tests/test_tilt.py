"""The tilted prior's β: where KL-control aims, and tuning started there."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from rlcomposer.errors import RLComposerError
from rlcomposer.music.theory import theory_reward
from rlcomposer.rl.environment import MelodyEnvConfig
from rlcomposer.rl.tilt import tilt_beta_for_kl, tilt_kl
from rlcomposer.rl.tuning import TuneConfig, tune


def test_the_tilt_of_a_normal_reward_has_its_known_beta():
    # rewards N(0, 1) tilted by e^{r/β} are N(1/β, 1): KL = 1/(2β²), so 3 nats at β = 1/√6
    scores = np.random.default_rng(0).normal(size=65_536)
    beta = tilt_beta_for_kl(scores, 3.0)
    assert beta == pytest.approx(1 / math.sqrt(6), rel=0.08)
    assert tilt_kl(scores, beta) == pytest.approx(3.0, abs=1e-6)
    assert tilt_kl(scores, beta / 2) > 3.0 > tilt_kl(scores, beta * 2)  # a colder tilt moves further


def test_a_tilt_the_sample_cannot_show_is_refused():
    with pytest.raises(RLComposerError, match="256 prior melodies cannot show a tilt at 5 nats"):
        tilt_beta_for_kl(np.random.default_rng(0).normal(size=256), 5.0)
    with pytest.raises(RLComposerError, match="same score"):
        tilt_beta_for_kl(np.ones(1000), 1.0)
    with pytest.raises(RLComposerError, match="kl_beta_start must be one of given, tilt, got 'hot'"):
        TuneConfig(kl_beta_start="hot")
    with pytest.raises(RLComposerError, match="kl_beta_start tilt needs a kl_target"):
        TuneConfig(kl_beta_start="tilt", kl_target=None)
    with pytest.raises(RLComposerError, match="tilt_samples must be from 256"):
        TuneConfig(tilt_samples=10)


def test_tuning_from_the_tilt_starts_beta_there_and_keeps_it_until_the_kl_reaches_the_target(
        tmp_path, tiny_prior_dir):
    said = []
    config = TuneConfig(prior=str(tiny_prior_dir), reward="theory", kl_target=50.0, kl_beta_start="tilt",
                        tilt_samples=4096, kl_beta_rises_first=True,
                        env=MelodyEnvConfig(num_bars=1), n_envs=8, minibatch_episodes=4,
                        total_timesteps=8 * 16 * 3, checkpoint_every=0)
    with pytest.raises(RLComposerError, match="4096 prior melodies cannot show a tilt at 50 nats"):
        tune(config, tmp_path / "far", reward_fn=theory_reward, progress=False, log=said.append)
    assert not (tmp_path / "far").exists()  # refused before anything was written

    config = replace(config, kl_target=3.0)
    tune(config, tmp_path / "run", reward_fn=theory_reward, progress=False, log=said.append)
    started = next(line for line in said if line.startswith("β starts at"))
    beta = float(started.split()[3].rstrip(":"))
    saved = json.loads((tmp_path / "run" / "tune_config.json").read_text())
    assert saved["env"]["kl_beta"] == pytest.approx(beta, abs=1e-4) and saved["kl_beta_start"] == "tilt"
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    # a tiny untrained policy stays far below 3 nats in three rollouts: β is never lowered
    assert all(row["kl_per_melody"] < 3.0 for row in history)
    assert [row["kl_beta"] for row in history] == pytest.approx([beta] * len(history), abs=1e-4)
