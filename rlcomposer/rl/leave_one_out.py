"""Leave-one-out baselines (RLOO, Ahmadian et al. 2024): every melody is baselined by the others.

The rollout's melodies all answer the same task (one metre, mode and length per
run), so each is a sample of the same "prompt". A melody's advantage is its
whole return — the reward at the end plus the KL-control terms of every step —
minus the mean return of the rollout's other melodies, and every step of the
melody shares it. No critic is needed: the baseline is unbiased and, with the
64 melodies of a rollout, nearly as sharp as a perfect value function of the
start state (which is all a critic can know here, since the reward comes only at
the end). PPO's clipped update then runs on these advantages unchanged.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


def leave_one_out_advantages(episode_returns: np.ndarray) -> np.ndarray:
    """``R_i − mean_{j≠i} R_j`` for each of ``n ≥ 2`` returns (one group)."""
    returns = np.asarray(episode_returns, dtype=np.float64)
    n = returns.size
    if n < 2:
        return np.zeros_like(returns)
    return returns - (returns.sum() - returns) / (n - 1)


class LeaveOneOutAdvantageCallback(BaseCallback):
    """After each rollout (and after KL-control has rewritten the rewards), replace SB3's GAE
    advantages by leave-one-out ones, the same for every step of a melody.

    Must come after :class:`~rlcomposer.rl.tuning.KLPenaltyCallback` in the callback list.
    The returns the critic learns stay GAE's (the critic no longer steers the policy).
    """

    def __init__(self, episode_steps: int):
        super().__init__()
        self.episode_steps = episode_steps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        steps, envs = buffer.rewards.shape
        per_env = steps // self.episode_steps
        # [n_steps, n_envs] -> [n_envs, episodes per env, T]: each row one melody, in time order
        rewards = buffer.rewards.T.reshape(envs, per_env, self.episode_steps)
        advantages = leave_one_out_advantages(rewards.sum(axis=2).ravel()).reshape(envs, per_env, 1)
        buffer.advantages[:] = np.broadcast_to(advantages, rewards.shape).reshape(envs, steps).T
