"""MelodyEnv and MelodyVecEnv: the Gymnasium spec, reward terms and bad input."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rlcomposer import ENV_ID
from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import VOCAB_SIZE, Melody
from rlcomposer.preferences.reward_functions import RewardFunctionError
from rlcomposer.prior.model import MelodyPrior, PriorConfig, load_prior
from rlcomposer.rl.environment import (
    PAD,
    MelodyEnvConfig,
    MelodyVecEnv,
)


def count_notes(melody: Melody) -> float:
    return float(len(melody.notes()))


@pytest.fixture
def prior(tiny_prior_dir):
    return load_prior(tiny_prior_dir)


def test_env_passes_gymnasium_and_sb3_checkers_without_warnings(prior):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(ENV_ID, config=MelodyEnvConfig(reward_weight=0, theory_motif=1.0), prior=prior)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)


def test_episode_writes_one_melody_with_reward_terms(prior):
    env = gym.make(ENV_ID, config=MelodyEnvConfig(num_bars=2, kl_beta=0.5, theory_in_key=1.0),
                   prior=prior, reward_fn=count_notes)
    observation, _ = env.reset(seed=1)
    assert observation.shape == (32,) and (observation == PAD).all()
    total, steps, done = 0.0, 0, False
    while not done:
        observation, reward, done, truncated, info = env.step(env.action_space.sample())
        assert not truncated
        total += reward
        steps += 1
    assert steps == 32 and (observation != PAD).all()
    terms = info["reward_terms"]
    assert set(terms) == {"kl_prior", "reward", "theory_in_key"}
    assert terms["reward"] == count_notes(info["melody"])
    assert total == pytest.approx(sum(terms.values()))


def test_kl_term_is_beta_times_prior_log_probability(prior):
    beta = 0.3
    env = MelodyVecEnv(3, MelodyEnvConfig(num_bars=1, kl_beta=beta, reward_weight=0, theory_tonic=1.0), prior)
    env.reset()
    actions = np.random.default_rng(0).integers(0, VOCAB_SIZE, size=(16, 3))
    rewards = []
    for step in range(16):
        env.step_async(actions[step])
        _, reward, dones, infos = env.step_wait()
        rewards.append(reward)
    tokens = torch.as_tensor(actions.T, dtype=torch.long)
    log_p = F.log_softmax(prior.sequence_logits(tokens), -1).gather(-1, tokens.unsqueeze(-1))[..., 0]
    kl_terms = np.array([info["reward_terms"]["kl_prior"] for info in infos])
    assert np.allclose(kl_terms, beta * log_p.sum(1).detach().numpy(), atol=1e-4)
    assert dones.all() and "terminal_observation" in infos[0]


def test_vec_env_resets_after_each_episode(prior):
    env = MelodyVecEnv(2, MelodyEnvConfig(num_bars=1, reward_weight=0, theory_motif=1.0), prior)
    observations = env.reset()
    for _ in range(16):
        env.step_async(np.array([2, 3]))
        observations, _, dones, _ = env.step_wait()
    assert dones.all() and (observations == PAD).all()


def test_episode_length_must_be_whole_bars():
    from rlcomposer.config import ConfigError, load_config
    from rlcomposer.rl.tuning import TuneConfig

    with pytest.raises(ConfigError, match="'num_bars': expected an integer"):
        load_config(TuneConfig, None, {"num_bars": 2.5, "theory_motif": 1.0})
    with pytest.raises(RLComposerError, match="num_bars must be from 1 to 32"):
        MelodyEnvConfig(num_bars=0)


def test_a_negative_kl_beta_is_refused_with_its_range():
    with pytest.raises(RLComposerError, match="kl_beta must be 0 or more, got -1.0"):
        MelodyEnvConfig(kl_beta=-1.0)


def test_reward_function_that_returns_nan_names_the_melody(prior):
    env = MelodyVecEnv(2, MelodyEnvConfig(num_bars=1), prior, reward_fn=lambda m: math.nan)
    env.reset()
    with pytest.raises(RewardFunctionError, match="returned nan for melody 0"):
        for _ in range(16):
            env.step_async(np.array([2, 2]))
            env.step_wait()


def test_reward_function_that_raises_names_the_melody(prior):
    def broken(melody):
        raise KeyError("oops")

    env = MelodyVecEnv(1, MelodyEnvConfig(num_bars=1), prior, reward_fn=broken)
    env.reset()
    with pytest.raises(RewardFunctionError, match="raised KeyError.*melody 0"):
        for _ in range(16):
            env.step_async(np.array([5]))
            env.step_wait()


def test_prior_of_another_vocabulary_is_refused():
    other = MelodyPrior(PriorConfig(vocab_size=20, embedding_dim=4, hidden_size=4))
    with pytest.raises(RLComposerError, match="vocabulary of 20"):
        MelodyVecEnv(1, MelodyEnvConfig(reward_weight=0, theory_motif=1), other)


def test_missing_reward_function_is_an_error(prior):
    with pytest.raises(RLComposerError, match="no reward function"):
        MelodyVecEnv(1, MelodyEnvConfig(reward_weight=1.0), prior)
