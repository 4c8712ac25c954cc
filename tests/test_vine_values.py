"""Monte-Carlo values inside the melody (``tune --set vine_samples=K``): each stretch of a melody
is credited with what it did to the expected reward."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import Melody
from rlcomposer.prior.model import load_prior
from rlcomposer.rl.environment import MelodyEnvConfig
from rlcomposer.rl.tuning import TuneConfig, build_model, tune
from rlcomposer.rl.tuning_callbacks import KLPenaltyCallback
from rlcomposer.rl.vine_values import MonteCarloValueAdvantageCallback, checkpoint_advantages

DECIDING_STEP = 11


def rest_at_the_deciding_step(melody: Melody) -> float:
    """1 when step 11 of the melody starts a rest or holds: the reward is settled there."""
    return float(melody.tokens[DECIDING_STEP] < 2)


class RolloutCopy(BaseCallback):
    """Keeps the rollout's advantages and actions as the update will see them."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.advantages = self.model.rollout_buffer.advantages.copy()
        self.actions = self.model.rollout_buffer.actions[..., 0].copy()


def test_advantages_telescope_between_checkpoints():
    rewards = np.zeros((2, 6))
    rewards[:, -1] = [1.0, 3.0]  # the reward at the end
    rewards[:, 1] = [-0.5, 0.0]  # a KL-control term on step 1
    values = np.array([[0.2, 0.7], [2.0, 2.5]])  # at step 0 and at the checkpoint, step 3
    advantages = checkpoint_advantages(rewards, values, [3])
    assert advantages[0].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.3, 0.3, 0.3])
    assert advantages[1].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])


def test_steps_after_the_reward_is_settled_get_no_credit(metre_prior_dir):
    """With the reward settled at step 11 and no KL-control, the half bar after it (and every step
    after) is credited with nothing, and the half bar holding step 11 with the reward it settled
    less what the melody could expect before it."""
    config = TuneConfig(prior=str(metre_prior_dir), env=MelodyEnvConfig(num_bars=2, metre="4/4", kl_beta=0.0),
                        kl_target=None, n_envs=8, minibatch_episodes=4, total_timesteps=8 * 32,
                        vine_samples=3, vine_every=8, checkpoint_every=0)
    model = build_model(config, load_prior(metre_prior_dir), rest_at_the_deciding_step)
    kl_penalty = KLPenaltyCallback(load_prior(metre_prior_dir), 0.0)
    values = MonteCarloValueAdvantageCallback(load_prior(metre_prior_dir), kl_penalty,
                                              model.env.episodes.final_reward, 32, 8, 3)
    seen = RolloutCopy()
    model.learn(8 * 32, callback=[kl_penalty, values, seen])
    advantages, actions = seen.advantages.T, seen.actions.T  # [melodies, steps]
    settled = (actions[:, DECIDING_STEP] < 2).astype(float)
    assert np.allclose(advantages[:, 16:], 0.0)
    # steps 8-15 share the settled reward less the value at step 8 (a mean over 3 continuations)
    assert np.allclose(advantages[:, 8:16], advantages[:, 8:9])
    expected_at_8 = settled - advantages[:, 8]
    assert ((expected_at_8 >= -1e-9) & (expected_at_8 <= 1 + 1e-9)).all()


def test_a_tuning_run_with_monte_carlo_values_writes_a_policy(tmp_path, metre_prior_dir):
    config = TuneConfig(prior=str(metre_prior_dir), env=MelodyEnvConfig(num_bars=1, metre="6/8", theory_motif=1.0),
                        n_envs=8, minibatch_episodes=4, total_timesteps=8 * 12 * 2, vine_samples=2,
                        vine_every=6, checkpoint_every=0)
    metrics = tune(config, tmp_path / "run", progress=False, log=lambda _: None)
    assert metrics["timesteps"] == 8 * 12 * 2 and load_prior(tmp_path / "run").config.vocab_size == 39


@pytest.mark.parametrize("settings", [{"algorithm": "sequence"}, {"kl_control": "exact"}])
def test_monte_carlo_values_need_rloo_and_the_sampled_kl(settings):
    with pytest.raises(RLComposerError, match="vine_samples needs a leave-one-out algorithm"):
        TuneConfig(vine_samples=2, **settings)
