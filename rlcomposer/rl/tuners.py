"""Tuners as peers: one interface from (prior, reward, labels, shape) to a tuned model.

Every way of tuning the prior — PPO and its variants, DPO, best-of-N sampling —
is a :class:`Tuner`: given the prior network, a melody-level reward (or None),
the rated comparisons and the melodies' shape (metre, mode, length), it returns
a :class:`TunedModel`, something that samples melodies, with its KL to the prior
when that is known in closed form and its training history. The experiment loop
runs one or several tuners on the same reward model and evaluates each against
the prior, and against best-of-N at the same KL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from rlcomposer.errors import RLComposerError
from rlcomposer.preferences.reward_functions import RewardFunction
from rlcomposer.prior.model import MelodyCondition, MelodyPrior
from rlcomposer.prior.registry import MelodyModel, PriorModel
from rlcomposer.rl import ALGORITHMS
from rlcomposer.rl.best_of_n import BestOfNModel
from rlcomposer.rl.kl import best_of_n_for_kl, best_of_n_kl
from rlcomposer.rl.tuning import TuneConfig, tune_policy
from rlcomposer.validation import above, between, check_config

BEST_OF_N = "best-of-n"
"""The tuner name of best-of-N sampling from the prior (N from its own KL target)."""

TUNER_NAMES = (*ALGORITHMS, BEST_OF_N)
"""Every tuner an experiment may name: the ``tune`` algorithms and ``best-of-n``."""


@dataclass
class TunedModel:
    """What a tuner hands back: a model that samples tuned melodies, and how it was made."""

    name: str
    """The tuner's name (``sequence``, ``vbon``, ``dpo``, ``best-of-n``, ...)."""
    model: MelodyModel
    """Samples the tuned melodies (a policy, or best-of-N over the prior)."""
    policy: MelodyPrior | None = None
    """The tuned network, for policies (None for best-of-N)."""
    kl_per_melody: float | None = None
    """KL(model‖prior) per melody when known in closed form (best-of-N); None: measure it."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Training records (KL, reward by term, musicality), one per rollout or epoch."""
    seconds: float = 0.0
    """Wall time of tuning."""
    directory: Path | None = None
    """Where the tuner saved its model (a policy directory), if anywhere."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """The tuner's own metrics (as in a policy directory's ``metrics.json``)."""


class Tuner(Protocol):
    """Tunes the prior towards a reward (or the labels) for melodies of one shape."""

    name: str

    def tune(self, prior: MelodyPrior, reward: RewardFunction | None, labels: Sequence[Any],
             shape: MelodyCondition, out_dir: Path, log: Callable[[str], None],
             gold_fn: RewardFunction | None = None) -> TunedModel:
        """Tune and return the tuned model (saving whatever it saves under ``out_dir``)."""


def _with_shape(config: TuneConfig, shape: MelodyCondition) -> TuneConfig:
    """``config`` for melodies of ``shape``: its metre, mode and length in whole bars."""
    steps_per_bar = shape.metre.steps_per_bar
    if shape.num_steps is None or shape.num_steps % steps_per_bar:
        raise RLComposerError(f"a tuner needs melodies of whole bars of {shape.metre.name}, "
                              f"got {shape.num_steps} steps")
    env = replace(config.env, metre=shape.metre.name, mode=shape.mode,
                  num_bars=shape.num_steps // steps_per_bar)
    return replace(config, env=env)


@dataclass
class PolicyTuner:
    """A policy tuned by ``rlcomposer tune``: PPO (any variant) or DPO, per ``config.algorithm``."""

    config: TuneConfig
    progress: bool = True

    @property
    def name(self) -> str:
        return self.config.algorithm

    def tune(self, prior, reward, labels, shape, out_dir, log, gold_fn=None) -> TunedModel:
        config = _with_shape(self.config, shape)
        if reward is not None and config.reward is None:  # the config records that a reward was given
            config = replace(config, reward="reward function")
        started = time.monotonic()
        result = tune_policy(config, out_dir, reward, progress=self.progress, log=log, gold_fn=gold_fn,
                             comparisons=labels, prior=prior)
        return TunedModel(self.name, PriorModel(result.policy, self.name), policy=result.policy,
                          history=result.history, seconds=time.monotonic() - started,
                          directory=Path(out_dir), metrics=result.metrics)


@dataclass
class BestOfNTuner:
    """Best-of-N sampling from the prior under the reward: no training; N from its own KL target
    (the smallest N whose closed-form KL, log N − (N − 1)/N, reaches ``kl_target``)."""

    kl_target: float = 3.0
    """KL to the prior per melody, in nats, that N is chosen for."""
    cap: int = 4096
    """Largest N."""
    name: str = BEST_OF_N

    def __post_init__(self) -> None:
        check_config(self, {"kl_target": above(0), "cap": between(1, 1 << 20, whole=True)}, "best-of-N's ")

    def tune(self, prior, reward, labels, shape, out_dir, log, gold_fn=None) -> TunedModel:
        if reward is None:
            raise RLComposerError("best-of-N needs a reward function")
        n = best_of_n_for_kl(self.kl_target, self.cap)
        model = BestOfNModel(PriorModel(prior, "prior"), reward, n, "reward model")
        log(f"best-of-N: N = {n} for a KL target of {self.kl_target:g} nats")
        return TunedModel(self.name, model, kl_per_melody=best_of_n_kl(n), metrics={"best_of": n})


def make_tuner(name: str, config: TuneConfig, progress: bool = True) -> Tuner:
    """The tuner called ``name``: a ``tune`` algorithm (with ``config``'s other settings) or
    ``best-of-n`` (at ``config.kl_target``, 3 nats when that is None)."""
    if name == BEST_OF_N:
        return BestOfNTuner(config.kl_target if config.kl_target is not None else 3.0)
    if name not in ALGORITHMS:
        raise RLComposerError(f"tuner must be one of {', '.join(TUNER_NAMES)}, got '{name}'")
    return PolicyTuner(replace(config, algorithm=name), progress)
