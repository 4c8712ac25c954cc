"""The prior-initialised policy and sequence-level PPO: same numbers as per-transition PPO."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rlcomposer.config import config_to_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.prior.model import MelodyPrior, PriorConfig
from rlcomposer.rl.environment import MelodyEnvConfig, MelodyVecEnv
from rlcomposer.rl.policy import MelodyActorCriticPolicy
from rlcomposer.rl.sequence_ppo import SequencePPO

ENV_CONFIG = MelodyEnvConfig(num_bars=1, kl_beta=0.1, reward_weight=0, theory_in_key=1.0,
                             theory_motif=1.0)


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    return MelodyPrior(PriorConfig(embedding_dim=16, hidden_size=32)).eval()


def make(algorithm, prior, n_envs=8, **kwargs):
    env = MelodyVecEnv(n_envs, ENV_CONFIG, prior)
    return algorithm(MelodyActorCriticPolicy, env, n_steps=32, batch_size=64, n_epochs=2, seed=0,
                     device="cpu", learning_rate=3e-4, gamma=1.0, ent_coef=0.1,
                     policy_kwargs={"prior_config": config_to_dict(prior.config),
                                    "prior_state_dict": prior.state_dict()}, **kwargs)


def test_actor_starts_with_the_priors_logits(prior):
    model = make(SequencePPO, prior)
    tokens = torch.randint(0, 39, (4, 16))
    assert torch.allclose(model.policy.actor.sequence_logits(tokens), prior.sequence_logits(tokens), atol=1e-6)
    observation = torch.full((2, 16), 39)
    distribution = model.policy.get_distribution(observation)
    first = torch.log_softmax(prior.sequence_logits(torch.zeros(2, 1, dtype=torch.long))[:, 0], -1)
    assert torch.allclose(distribution.distribution.logits, first, atol=1e-5)


def test_whole_episode_evaluation_equals_per_transition(prior):
    model = make(SequencePPO, prior)
    model.learn(8 * 32)  # one rollout and one update, so the policy differs from the prior
    model.collect_rollouts(model.env, model._init_callback(None), model.rollout_buffer, model.n_steps)
    policy = model.policy
    for batch in model.rollout_buffer.get(64):
        assert policy._whole_episodes(batch.observations, batch.actions) is not None
        policy.sequence_evaluation = True
        values, log_prob, entropy = policy.evaluate_actions(batch.observations, batch.actions)
        policy.sequence_evaluation = False
        values_1, log_prob_1, entropy_1 = policy.evaluate_actions(batch.observations, batch.actions)
        policy.sequence_evaluation = True
        assert torch.allclose(log_prob, log_prob_1, atol=1e-5)
        assert torch.allclose(values, values_1, atol=1e-5)
        assert torch.allclose(entropy, entropy_1, atol=1e-5)
        # the rollout's log-probs (computed with the carried state) match too
        assert torch.allclose(log_prob, batch.old_log_prob, atol=1e-5)


def test_rollout_cache_gives_the_same_actions_as_stock_ppo(prior):
    sequence = make(SequencePPO, prior)
    sequence.learn(8 * 32)
    stock = make(PPO, prior)
    stock.learn(8 * 32)
    assert np.array_equal(sequence.rollout_buffer.actions, stock.rollout_buffer.actions)
    assert np.allclose(sequence.rollout_buffer.log_probs, stock.rollout_buffer.log_probs, atol=1e-5)


def test_minibatches_are_whole_episodes(prior):
    model = make(SequencePPO, prior)
    model.learn(8 * 32)
    for batch in model.rollout_buffer.get(64):
        steps = (batch.observations != 39).sum(1).view(-1, 16)
        assert torch.equal(steps, torch.arange(16).expand_as(steps))


def test_rollout_length_must_be_whole_episodes(prior):
    env = MelodyVecEnv(2, ENV_CONFIG, prior)
    with pytest.raises(RLComposerError, match="multiples of the episode length"):
        SequencePPO(MelodyActorCriticPolicy, env, n_steps=24, batch_size=48, device="cpu",
                    policy_kwargs={"prior_config": config_to_dict(prior.config)})


def test_with_a_kl_reference_the_entropy_slot_holds_minus_the_exact_kl_to_the_prior(prior):
    """Exact KL-control: at the start the policy is the prior (KL 0 everywhere); after an update
    each state's −KL(π‖prior) equals the exact KL from the two networks' full distributions,
    by whole episodes and per transition alike; the prior is not saved with the policy."""
    from rlcomposer.rl.kl import kl_to_prior_per_step

    model = make(SequencePPO, prior)
    model.policy.set_kl_reference(prior)
    model.learn(8 * 32)  # one update with the KL in the loss
    model.collect_rollouts(model.env, model._init_callback(None), model.rollout_buffer, model.n_steps)
    policy = model.policy
    batch = next(model.rollout_buffer.get(64))
    episodes = batch.actions.long().view(-1, 16)
    expected = -kl_to_prior_per_step(policy.actor, prior, episodes, policy.condition).reshape(-1)
    assert expected.abs().max() > 1e-4  # the policy has moved
    _, _, whole = policy.evaluate_actions(batch.observations, batch.actions)
    policy.sequence_evaluation = False
    _, _, per_transition = policy.evaluate_actions(batch.observations, batch.actions)
    policy.sequence_evaluation = True
    assert torch.allclose(whole, expected, atol=1e-5)
    assert torch.allclose(per_transition, expected, atol=1e-5)
    assert not any(name.startswith("_kl") for name in policy.state_dict())
    untuned = make(SequencePPO, prior).policy
    untuned.set_kl_reference(prior)
    assert torch.allclose(untuned.evaluate_actions(batch.observations, batch.actions)[2], torch.zeros(64), atol=1e-5)
    policy.set_kl_reference(None)
    assert torch.all(policy.evaluate_actions(batch.observations, batch.actions)[2] > 0)  # the entropy again
