"""Composition as a decision process: ``MelodyEnv`` and its batched twin ``MelodyVecEnv``.

## Description

An episode writes one melody of ``num_bars`` bars of ``metre`` (16 steps a bar
in 4/4, 12 in 6/8), in ``mode`` with its tonic on C, one token per step (see
:mod:`rlcomposer.music.melody`: REST, HOLD or a pitch onset). A conditioned
prior is told the metre, mode and length.

## Action space

``Discrete(39)``: the next token.

## Observation space

``Box(0, 39, (T,), int64)`` with ``T = num_bars * steps per bar``: the tokens chosen so far,
followed by the padding value 39 (``PAD``, equal to the prior's BOS token). The
step index is the number of non-padding entries.

## Rewards

A sum of pluggable terms, each reported separately in ``info["reward_terms"]``
at the end of the episode (per-melody sums):

* ``kl_prior``: every step, ``kl_beta * log p_prior(a_t | a_<t)`` (KL-control,
  Jaques et al. 2017). The environment cannot see the policy, so a learner
  adds the other half, ``-kl_beta * log policy(a_t | a_<t)``, itself. ``tune``
  runs the environment with ``kl_beta = 0`` and applies the whole term after
  each rollout (:class:`rlcomposer.rl.tuning.KLPenaltyCallback`, where β may
  adapt to a target KL), so that the objective is
  ``E[reward] - β * KL(policy || prior)``.
* ``reward``: at the last step, ``reward_weight * reward_fn(melody)`` for any
  melody-level reward function (``module:function`` or a reward model).
* ``theory_<term>``: at the last step, ``weight * term(melody)`` for each
  music-theory term of :mod:`rlcomposer.music.theory` with a non-zero weight,
  judged in C ``mode`` (the melody's key).

## Starting state

An empty melody (all ``PAD``); the prior's recurrent state is reset.

## Episode end

Terminates after exactly ``T`` steps; never truncated.

## Arguments

``MelodyEnv(config=None, prior=None, reward_fn=None)``: ``prior`` defaults to
the shipped prior. With neither ``config`` nor ``reward_fn`` (as in
``gymnasium.make("rlcomposer/Melody-v0")`` after ``import rlcomposer``), the
reward is RL Tuner's: every music-theory term at weight 1 and β = 0.1
(:data:`THEORY_ENV_CONFIG`). With a ``reward_fn`` and no ``config``, the reward
function at weight 1 and β = 0.1 (``MelodyEnvConfig()``); ``reward_fn`` is
required when ``config.reward_weight`` is non-zero.

## Version history

* v0: first version; ``metre`` and ``mode`` added (defaults 4/4 major keep
  the first version's task).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import Key, parse_mode
from rlcomposer.music.melody import VOCAB_SIZE, Melody
from rlcomposer.music.metre import MAX_BARS, Metre, parse_metre
from rlcomposer.music.theory import THEORY_TERMS, theory_terms
from rlcomposer.preferences.reward_functions import RewardFunction, score_melodies
from rlcomposer.prior.model import MelodyCondition, MelodyPrior
from rlcomposer.validation import NON_NEGATIVE, between, check_config

PAD = VOCAB_SIZE


@dataclass(frozen=True)
class MelodyEnvConfig:
    """The composition task: melody length and the weight of each reward term."""

    num_bars: int = 4
    """Episode length in bars of ``metre`` (1..32; a melody is whole bars)."""
    metre: str = "4/4"
    """Time signature of the melodies (2/4, 3/4, 4/4, 2/2, 3/8, 6/8, 9/8, 12/8, 6/4, 3/2, 4/2)."""
    mode: str = "major"
    """Mode of the melodies (their tonic is C): major, minor, dorian, mixolydian, ..."""
    kl_beta: float = 0.1
    """β: weight of log p_prior(action | history) per step (KL-control); 0 turns it off."""
    reward_weight: float = 1.0
    """Weight of the melody-level reward function at the end (0: no reward function)."""
    theory_in_key: float = 0.0
    """Weight of the in-key term (minus the share of notes outside C ``mode``)."""
    theory_tonic: float = 0.0
    """Weight of the tonic term (first and last note on the tonic, C)."""
    theory_leaps: float = 0.0
    """Weight of the leap-resolution term (resolved minus doubled leaps, normalised)."""
    theory_repetition: float = 0.0
    """Weight of the repetition term (minus the share of excessively repeated steps)."""
    theory_motif: float = 0.0
    """Weight of the motif term (share of steps in a motif and in a repeated motif)."""

    def __post_init__(self) -> None:
        check_config(self, {"num_bars": between(1, MAX_BARS, whole=True), "kl_beta": NON_NEGATIVE})
        object.__setattr__(self, "metre", parse_metre(self.metre).name)
        object.__setattr__(self, "mode", parse_mode(self.mode))

    # ---- derived values --------------------------------------------------
    @property
    def time_signature(self) -> Metre:
        return parse_metre(self.metre)

    @property
    def key(self) -> Key:
        """The melodies' key: C in ``mode``."""
        return Key("C", self.mode)

    @property
    def num_steps(self) -> int:
        return self.num_bars * self.time_signature.steps_per_bar

    @property
    def condition(self) -> MelodyCondition:
        return MelodyCondition(self.time_signature, self.mode, self.num_steps)

    def melody(self, tokens: np.ndarray) -> Melody:
        """A finished episode's tokens as a melody in the task's metre and key."""
        return Melody(tokens, {}, self.time_signature, self.key)

    @property
    def theory_weights(self) -> dict[str, float]:
        """Non-zero music-theory weights by term name."""
        return {term: getattr(self, f"theory_{term}") for term in THEORY_TERMS
                if getattr(self, f"theory_{term}") != 0}


THEORY_ENV_CONFIG = MelodyEnvConfig(reward_weight=0.0, **{f"theory_{term}": 1.0 for term in THEORY_TERMS})
"""The default task without a reward function: RL Tuner's music-theory terms, each at weight 1."""


def check_prior_vocabulary(prior: MelodyPrior, where: str = "prior") -> None:
    if prior.config.vocab_size != VOCAB_SIZE:
        raise RLComposerError(
            f"{where} has a vocabulary of {prior.config.vocab_size} tokens; this version uses {VOCAB_SIZE}"
        )


class MelodyEpisodes:
    """N melodies written in lockstep: tokens, the prior's state and the reward terms.

    The engine behind both environments: the prior's log-probabilities of all N
    actions come from one batched GRU step that carries the recurrent state.
    """

    def __init__(self, num_melodies: int, config: MelodyEnvConfig, prior: MelodyPrior,
                 reward_fn: RewardFunction | None):
        check_prior_vocabulary(prior)
        if config.reward_weight != 0 and reward_fn is None:
            raise RLComposerError("reward_weight is not 0 but no reward function was given")
        self.num_melodies = num_melodies
        self.config = config
        self.prior = prior.eval()
        self.prior.check_condition(config.condition)
        self._condition = self.prior.condition_batch(config.condition, num_melodies)
        self.reward_fn = reward_fn
        self.num_steps = config.num_steps
        self.tokens = np.full((num_melodies, self.num_steps), PAD, dtype=np.int64)
        self.step_index = 0
        self.kl_prior_sum = np.zeros(num_melodies)
        self._log_probs: torch.Tensor | None = None
        self._hidden: torch.Tensor | None = None

    @torch.inference_mode()
    def _advance_prior(self, previous: torch.Tensor) -> None:
        logits, self._hidden = self.prior.step(previous, self.step_index, self._hidden,
                                               self._condition)
        self._log_probs = F.log_softmax(logits, dim=-1)

    def reset(self) -> np.ndarray:
        self.tokens.fill(PAD)
        self.step_index = 0
        self.kl_prior_sum.fill(0.0)
        self._hidden = None
        if self.config.kl_beta != 0:
            self._advance_prior(torch.full((self.num_melodies,), self.prior.config.bos_token))
        return self.tokens.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, dict[str, np.ndarray] | None]:
        """Append the actions; returns (observations, rewards, done, reward terms at the end)."""
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_melodies)
        if actions.min() < 0 or actions.max() >= VOCAB_SIZE:
            raise RLComposerError(f"actions must be tokens 0..{VOCAB_SIZE - 1}, got {actions.tolist()}")
        self.tokens[:, self.step_index] = actions
        rewards = np.zeros(self.num_melodies)
        if self.config.kl_beta != 0:
            assert self._log_probs is not None
            action_tensor = torch.from_numpy(actions)
            log_p = self._log_probs.gather(1, action_tensor.view(-1, 1)).squeeze(1).double().numpy()
            rewards += self.config.kl_beta * log_p
            self.kl_prior_sum += self.config.kl_beta * log_p
        self.step_index += 1
        done = self.step_index == self.num_steps
        terms = None
        if done:
            terms = self.final_terms()
            for name, values in terms.items():
                if name != "kl_prior":
                    rewards += values
        elif self.config.kl_beta != 0:
            self._advance_prior(torch.from_numpy(actions))
        return self.tokens.copy(), rewards, done, terms

    def final_terms(self) -> dict[str, np.ndarray]:
        """Per-melody reward terms of the finished melodies (kl_prior is the per-step sum)."""
        terms: dict[str, np.ndarray] = {}
        if self.config.kl_beta != 0:
            terms["kl_prior"] = self.kl_prior_sum.copy()
        if self.config.reward_weight != 0:
            assert self.reward_fn is not None
            melodies = [self.config.melody(row) for row in self.tokens]
            terms["reward"] = self.config.reward_weight * score_melodies(self.reward_fn, melodies)
        weights = self.config.theory_weights
        if weights:
            for name, values in theory_terms(self.tokens, tuple(weights), self.config.key).items():
                terms[f"theory_{name}"] = weights[name] * values
        return terms


def _observation_space(num_steps: int) -> spaces.Box:
    return spaces.Box(low=0, high=PAD, shape=(num_steps,), dtype=np.int64)


class MelodyEnv(gym.Env):
    """One melody per episode, one token per step (the spec is the module docstring)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: MelodyEnvConfig | None = None, prior: MelodyPrior | None = None,
                 reward_fn: RewardFunction | None = None, render_mode: str | None = None):
        if prior is None:
            from rlcomposer.prior.model import load_prior

            prior = load_prior()
        if config is None:
            config = THEORY_ENV_CONFIG if reward_fn is None else MelodyEnvConfig()
        self.config = config
        self.episodes = MelodyEpisodes(1, self.config, prior, reward_fn)
        self.action_space = spaces.Discrete(VOCAB_SIZE)
        self.observation_space = _observation_space(self.config.num_steps)
        self.render_mode = render_mode
        self._started = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._started = True
        return self.episodes.reset()[0], {}

    def step(self, action):
        if not self._started:
            raise RLComposerError("call reset() before step()")
        observations, rewards, done, terms = self.episodes.step(np.array([action]))
        info: dict[str, Any] = {"step": self.episodes.step_index}
        if done:
            self._started = False
            info["reward_terms"] = {name: float(values[0]) for name, values in terms.items()}
            info["melody"] = self.config.melody(self.episodes.tokens[0])
        return observations[0], float(rewards[0]), done, False, info

    def render(self):
        if self.render_mode == "ansi":
            tokens = self.episodes.tokens[0]
            return repr(Melody(tokens[tokens != PAD])) if (tokens != PAD).any() else "Melody(empty)"
        return None


class MelodyVecEnv(VecEnv):
    """``num_envs`` melodies in lockstep; the prior and the reward run once per step for all.

    Every sub-environment starts, and so ends, its episodes together (fixed
    length), which lets sequence-level PPO treat each rollout column as whole
    episodes. Finished episodes reset automatically, as SB3 expects; the last
    observation is in ``info["terminal_observation"]`` and the reward terms in
    ``info["reward_terms"]``.
    """

    def __init__(self, num_envs: int, config: MelodyEnvConfig | None = None,
                 prior: MelodyPrior | None = None, reward_fn: RewardFunction | None = None):
        if prior is None:
            from rlcomposer.prior.model import load_prior

            prior = load_prior()
        self.config = config or MelodyEnvConfig()
        self.episodes = MelodyEpisodes(num_envs, self.config, prior, reward_fn)
        self.render_mode = None
        super().__init__(num_envs, _observation_space(self.config.num_steps), spaces.Discrete(VOCAB_SIZE))
        self._actions: np.ndarray | None = None
        self._episode_returns = np.zeros(num_envs)
        self._episode_started = time.monotonic()
        self.finished_melodies: list[np.ndarray] = []
        """Token arrays of the most recent finished episodes (read by callbacks)."""

    def reset(self) -> np.ndarray:
        self._reset_seeds()
        self._reset_options()
        self._episode_returns.fill(0.0)
        return self.episodes.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        assert self._actions is not None, "step_async first"
        observations, rewards, done, terms = self.episodes.step(self._actions)
        self._episode_returns += rewards
        dones = np.full(self.num_envs, done)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done:
            assert terms is not None
            elapsed = time.monotonic() - self._episode_started
            self.finished_melodies = [row.copy() for row in self.episodes.tokens]
            for index, info in enumerate(infos):
                info["terminal_observation"] = observations[index]
                info["reward_terms"] = {name: float(values[index]) for name, values in terms.items()}
                info["episode"] = {"r": float(self._episode_returns[index]),
                                   "l": self.episodes.num_steps, "t": round(elapsed, 6)}
            observations = self.reset()
            self._episode_started = time.monotonic()
        return observations, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        pass

    # --- the VecEnv plumbing for attributes (one shared engine, so all indices agree)
    def _indices(self, indices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def get_attr(self, attr_name, indices=None):
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name, value, indices=None):
        setattr(self, attr_name, value)

    def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False for _ in self._indices(indices)]


