"""Sequence-level PPO: SB3's PPO, updating on minibatches of whole episodes.

Stock PPO evaluates each stored transition on its own; for a recurrent policy
over a token history that means re-reading the whole history per transition
(cost ∝ T² per melody). Episodes here have a fixed length and all
sub-environments run in lockstep, so every rollout column is a run of whole
episodes. :class:`EpisodeRolloutBuffer` hands out minibatches of whole episodes
in time order, and :class:`~rlcomposer.rl.policy.MelodyActorCriticPolicy` evaluates
such a minibatch in one causal pass (cost ∝ T). While collecting rollouts the
policy carries its GRU state from step to step. The PPO update itself is SB3's,
unchanged: the log-probs, values and entropies are the same numbers (a test).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from rlcomposer.errors import RLComposerError
from rlcomposer.rl.environment import PAD
from rlcomposer.rl.policy import MelodyActorCriticPolicy


class EpisodeRolloutBuffer(RolloutBuffer):
    """A rollout buffer whose minibatches are whole episodes, each in time order."""

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        assert self.full, ""
        if not self.generator_ready:
            for name in ("observations", "actions", "values", "log_probs", "advantages", "returns"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        length = int(self.obs_shape[0])
        total = self.buffer_size * self.n_envs
        if self.buffer_size % length:
            raise RLComposerError(
                f"n_steps ({self.buffer_size}) must be a whole number of episodes of {length} steps")
        starts = np.arange(0, total, length)
        if not (self.observations[starts] == PAD).all():
            raise RLComposerError("the rollout does not start on episode boundaries")
        batch_size = total if batch_size is None else batch_size
        episodes_per_batch = max(1, batch_size // length)
        order = np.random.permutation(starts.size)
        offsets = np.arange(length)
        for first in range(0, order.size, episodes_per_batch):
            chosen = starts[order[first:first + episodes_per_batch]]
            yield self._get_samples((chosen[:, None] + offsets[None, :]).reshape(-1))


class SequencePPO(PPO):
    """PPO on a :class:`MelodyActorCriticPolicy` with whole-episode minibatches.

    Takes the same arguments as ``PPO``; ``n_steps`` must be a multiple of the
    episode length and ``batch_size`` one too (it counts transitions, as in PPO).
    """

    def __init__(self, policy, env, **kwargs):
        kwargs.setdefault("rollout_buffer_class", EpisodeRolloutBuffer)
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.policy, MelodyActorCriticPolicy):
            raise RLComposerError("SequencePPO needs a MelodyActorCriticPolicy")
        length = self.policy.num_steps
        if self.n_steps % length or self.batch_size % length:
            raise RLComposerError(
                f"n_steps ({self.n_steps}) and batch_size ({self.batch_size}) must be multiples of "
                f"the episode length ({length} steps)")
        self.policy.use_state_cache = True
        self.policy.sequence_evaluation = True
