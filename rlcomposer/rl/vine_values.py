"""Monte-Carlo values at checkpoints inside each melody (VinePPO, Kazemnejad et al. 2024).

With the reward at the end only, RLOO gives every note of a melody the same advantage: the
melody's return minus its group's. A note that placed the climax too early and a note that did
nothing shares one number, and the update learns the melody-wide features a taste asks for
(one climax, late; a mean interval inside a band) only slowly. Here, every ``every`` steps of
each rollout melody (a checkpoint), ``samples`` continuations are drawn from the current policy
and scored as the environment scores a melody (the reward at the end plus the KL-control terms
of the steps they add), their mean the checkpoint's value V̂. A step ``t`` between checkpoints
``c`` and ``c'`` gets the advantage

    A_t = (the melody's rewards from t to c' − 1) + V̂(c') − V̂(c)

with V̂(0) the mean return of the group's other melodies (RLOO's baseline) and V̂(T) = 0. V̂(c)
is drawn independently of the steps after ``c``, so it is a baseline; V̂(c') is an unbiased
estimate of the return after ``c'``: the advantage stays unbiased and each step is credited with
what its own stretch of the melody did to the expected return.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch.nn import functional as F

from rlcomposer.prior.model import MelodyPrior
from rlcomposer.rl.leave_one_out import leave_one_out_advantages
from rlcomposer.rl.tuning_callbacks import KLPenaltyCallback, rollout_episodes


@torch.inference_mode()
def sample_continuations(actor: MelodyPrior, prefixes: torch.Tensor, num_steps: int, condition,
                         generator: torch.Generator) -> torch.Tensor:
    """Each row of ``prefixes`` ``[R, c]`` (c ≥ 1) continued to ``num_steps`` tokens by ``actor``."""
    rows, start = prefixes.shape
    batch = actor.condition_batch(condition, rows)
    _, hidden = actor(actor.shift_right(prefixes), 0, None, batch)
    tokens = torch.empty(rows, num_steps, dtype=torch.long)
    tokens[:, :start] = prefixes
    previous = prefixes[:, -1]
    for t in range(start, num_steps):
        logits, hidden = actor.step(previous, t, hidden, batch)
        previous = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
        tokens[:, t] = previous
    return tokens


def checkpoint_advantages(rewards: np.ndarray, values: np.ndarray, checkpoints: list[int]) -> np.ndarray:
    """Advantages ``[E, T]`` from per-step rewards ``[E, T]`` and values ``[E, 1 + len(checkpoints)]``
    at step 0 and at each checkpoint (the value after the last step is 0)."""
    length = rewards.shape[1]
    bounds = [0, *checkpoints, length]
    values = np.column_stack([values, np.zeros(len(values))])
    advantages = np.empty_like(rewards, dtype=np.float64)
    for j in range(len(bounds) - 1):
        start, end = bounds[j], bounds[j + 1]
        to_go = np.cumsum(rewards[:, start:end][:, ::-1], axis=1)[:, ::-1]  # rewards from t to end − 1
        advantages[:, start:end] = to_go + (values[:, j + 1] - values[:, j])[:, None]
    return advantages


class MonteCarloValueAdvantageCallback(BaseCallback):
    """After each rollout (after KL-control has written the rewards), replace the advantages by
    Monte-Carlo ones with values at checkpoints (see the module docstring).

    ``final_reward(tokens [R, T]) -> [R]`` scores finished melodies as the environment does at
    the end (reward function and music-theory terms, without KL-control).
    """

    def __init__(self, prior: MelodyPrior, kl_penalty: KLPenaltyCallback,
                 final_reward: Callable[[np.ndarray], np.ndarray], episode_steps: int, every: int, samples: int,
                 seed: int = 0):
        super().__init__()
        self.prior = prior
        self.kl_penalty = kl_penalty
        self.final_reward = final_reward
        self.episode_steps = episode_steps
        self.checkpoints = list(range(every, episode_steps, every))
        self.samples = samples
        self.generator = torch.Generator().manual_seed(seed)

    def _on_step(self) -> bool:
        return True

    def checkpoint_values(self, episodes: torch.Tensor) -> np.ndarray:
        """V̂ ``[E, len(checkpoints)]``: the mean return after each checkpoint over fresh continuations."""
        actor = self.model.policy.actor
        condition = self.model.policy.condition
        beta = self.kl_penalty.last_beta
        values = np.zeros((episodes.shape[0], len(self.checkpoints)))
        for j, checkpoint in enumerate(self.checkpoints):
            prefixes = episodes[:, :checkpoint].repeat_interleave(self.samples, dim=0)
            tokens = sample_continuations(actor, prefixes, self.episode_steps, condition, self.generator)
            returns = self.final_reward(tokens.numpy())
            if beta != 0:
                with torch.inference_mode():
                    log_ratio = (self.prior.log_likelihood(tokens, condition)
                                 - actor.log_likelihood(tokens, condition))[:, checkpoint:].sum(dim=1)
                returns = returns + beta * log_ratio.double().numpy()
            values[:, j] = returns.reshape(-1, self.samples).mean(axis=1)
        return values

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        steps, envs = buffer.rewards.shape
        length = self.episode_steps
        per_env = steps // length
        rewards = buffer.rewards.T.reshape(envs * per_env, length).astype(np.float64)  # rollout_episodes' order
        episodes = rollout_episodes(self.model)
        returns = rewards.sum(axis=1)
        values = np.column_stack([returns - leave_one_out_advantages(returns),  # the others' mean return
                                  self.checkpoint_values(episodes)])
        advantages = checkpoint_advantages(rewards, values, self.checkpoints)
        buffer.advantages[:] = advantages.reshape(envs, per_env * length).T
