"""The policy is the prior: an SB3 actor-critic whose actor starts as the prior's weights.

The actor is a :class:`~rlcomposer.prior.model.MelodyPrior` (same architecture, dropout
off) loaded with the prior's weights, so at step 0 of training the policy's
logits equal the prior's. A new value head reads the same GRU state.

Three ways to compute the GRU state for a batch of observations, all giving the
same numbers:

* per transition (what stock SB3 PPO does): each observation's history is
  re-read from step 0 — cost ∝ T per transition, T² per melody;
* the rollout cache (``use_state_cache``): while collecting rollouts, when a
  batch extends the previous batch by one token, one GRU step from the cached
  state;
* whole episodes (``sequence_evaluation``): when a minibatch is made of whole
  episodes in time order (see :mod:`rlcomposer.rl.sequence_ppo`), one causal pass
  over each episode's actions — cost ∝ T per melody.

With a KL reference (:meth:`MelodyActorCriticPolicy.set_kl_reference`, the prior) the
"entropy" the policy hands PPO's update is −KL(π(·|s) ‖ prior(·|s)), exact over the
whole vocabulary at each state of the minibatch, so PPO's ``ent_coef`` weights an
exact KL penalty in the loss (:class:`~rlcomposer.rl.tuning_callbacks.ExactKLLossCallback`
sets it from β).
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from rlcomposer.prior.model import MelodyCondition, MelodyPrior, PriorConfig
from rlcomposer.rl.environment import PAD
from rlcomposer.rl.kl import kl_between_logits


class MelodyActorCriticPolicy(ActorCriticPolicy):
    """Actor = the melody prior's GRU and head; critic = a small head on the (detached) GRU state."""

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        lr_schedule,
        prior_config: dict[str, Any] | None = None,
        prior_state_dict: dict[str, torch.Tensor] | None = None,
        value_hidden_size: int = 64,
        condition: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        self.prior_config = dict(prior_config or {})
        self.condition_spec = dict(condition or {"metre": "4/4", "mode": "major"})
        """The task's metre and mode (one tune run has one), told to a conditioned actor."""
        self.prior_config["dropout"] = 0.0  # RL needs the same log-probs in rollout and update
        self.value_hidden_size = value_hidden_size
        self._initial_state = prior_state_dict
        self.use_state_cache = False
        self.sequence_evaluation = False
        self._cache: tuple[torch.Tensor, int, torch.Tensor, torch.Tensor] | None = None
        self._kl_reference: tuple[MelodyPrior, ...] = ()
        kwargs.pop("net_arch", None)
        kwargs.pop("ortho_init", None)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False,
                         **kwargs)

    def _build(self, lr_schedule) -> None:
        self.actor = MelodyPrior(PriorConfig(**self.prior_config))
        if self._initial_state is not None:
            self.actor.load_state_dict(self._initial_state)
            self._initial_state = None
        self.condition = MelodyCondition(self.condition_spec["metre"], self.condition_spec["mode"],
                                         self.num_steps)
        self.actor.check_condition(self.condition)
        hidden = self.actor.config.hidden_size
        self.value_head = nn.Sequential(
            nn.Linear(hidden, self.value_hidden_size), nn.Tanh(), nn.Linear(self.value_hidden_size, 1)
        )
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(prior_config=self.prior_config, value_hidden_size=self.value_hidden_size,
                    condition=self.condition_spec)
        return data

    @property
    def num_steps(self) -> int:
        return int(self.observation_space.shape[0])

    # ------------------------------------------------------------ GRU states
    @staticmethod
    def step_indices(tokens: torch.Tensor) -> torch.Tensor:
        """The step each observation is at: how many tokens it holds."""
        return (tokens != PAD).sum(dim=1)

    def set_kl_reference(self, prior: MelodyPrior | None) -> None:
        """Hand PPO −KL(π‖``prior``) per state instead of the entropy (None: the entropy again).
        The prior is held outside the module tree: not trained, not saved with the policy."""
        self._kl_reference = () if prior is None else (prior.eval(),)

    def _states_per_transition(self, tokens: torch.Tensor, network: MelodyPrior | None = None) -> torch.Tensor:
        """GRU output of ``network`` (default the actor) at each observation's current step,
        re-reading its history."""
        network = self.actor if network is None else network
        steps = self.step_indices(tokens).clamp(max=tokens.shape[1] - 1)
        output, _ = network.gru(network.embed(network.shift_right(tokens),
                                              torch.arange(tokens.shape[1]).expand_as(tokens),
                                              self.condition))
        return output[torch.arange(tokens.shape[0]), steps]

    def _states_with_cache(self, tokens: torch.Tensor) -> torch.Tensor:
        """One GRU step from the cached state when ``tokens`` extends the last batch by one."""
        steps = self.step_indices(tokens)
        step = int(steps[0])
        uniform = bool((steps == step).all()) and step < tokens.shape[1]
        cache = self._cache
        if uniform and step == 0:
            previous, hidden = torch.full_like(tokens[:, 0], self.actor.config.bos_token), None
        elif (uniform and cache is not None and cache[1] == step - 1
              and cache[0].shape == tokens.shape and torch.equal(cache[0][:, :step - 1], tokens[:, :step - 1])):
            previous, hidden = tokens[:, step - 1], cache[2]
        else:
            self._cache = None
            return self._states_per_transition(tokens)
        output, hidden = self.actor.gru(self.actor.embed(previous.view(-1, 1),
                                                         torch.full_like(previous.view(-1, 1), step),
                                                         self.condition), hidden)
        self._cache = (tokens.clone(), step, hidden, output[:, 0])
        return output[:, 0]

    def _states(self, obs: torch.Tensor) -> torch.Tensor:
        tokens = obs.long()
        if self.use_state_cache and not torch.is_grad_enabled():
            return self._states_with_cache(tokens)
        return self._states_per_transition(tokens)

    def episode_states(self, episode_actions: torch.Tensor) -> torch.Tensor:
        """GRU outputs ``[E, T, H]`` for whole episodes, in one causal pass."""
        output, _ = self.actor.gru(self.actor.embed(
            self.actor.shift_right(episode_actions),
            torch.arange(episode_actions.shape[1]).expand_as(episode_actions), self.condition))
        return output

    def _whole_episodes(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor | None:
        """``actions`` as ``[E, T]`` if the batch is whole episodes in time order, else None."""
        length = self.num_steps
        if not self.sequence_evaluation or obs.shape[0] % length:
            return None
        tokens = obs.long().view(-1, length, length)
        expected = torch.arange(length).expand(tokens.shape[0], length)
        if not torch.equal(self.step_indices(tokens.reshape(-1, length)).view(-1, length), expected):
            return None
        episode_actions = actions.long().view(-1, length)
        if not torch.equal(tokens[:, -1, :-1], episode_actions[:, :-1]):
            return None
        return episode_actions

    # -------------------------------------------------------- SB3 interface
    def _distribution_and_values(self, states: torch.Tensor):
        distribution = self.action_dist.proba_distribution(action_logits=self.actor.head(states))
        # the critic reads the actor's state but does not train it: value-loss gradients on
        # large returns would otherwise swamp the policy gradient and wreck the prior's GRU
        return distribution, self.value_head(states.detach())

    def forward(self, obs: torch.Tensor, deterministic: bool = False):
        distribution, values = self._distribution_and_values(self._states(obs))
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values, distribution.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor):
        episode_actions = self._whole_episodes(obs, actions)
        if episode_actions is not None:
            states = self.episode_states(episode_actions).reshape(-1, self.actor.config.hidden_size)
        else:
            states = self._states_per_transition(obs.long())
        distribution, values = self._distribution_and_values(states)
        actions = actions.long().flatten()
        if self._kl_reference:  # −KL(π‖prior) per state stands in for the entropy
            reference = self._kl_reference[0]
            with torch.no_grad():
                if episode_actions is not None:
                    reference_logits = reference.sequence_logits(episode_actions, self.condition)
                    reference_logits = reference_logits.reshape(-1, reference_logits.shape[-1])
                else:
                    reference_logits = reference.head(self._states_per_transition(obs.long(), reference))
            return values, distribution.log_prob(actions), -kl_between_logits(
                distribution.distribution.logits, reference_logits)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: torch.Tensor):
        return self._distribution_and_values(self._states(obs))[0]

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self._states_per_transition(obs.long()).detach())

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)
