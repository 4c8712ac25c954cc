"""Melody-level reward functions: any callable ``Melody -> float``.

Given on the command line as ``package.module:function`` (found on ``sys.path``:
installed packages and ``PYTHONPATH`` first; the CLI adds the working directory
*last*, so a file there never shadows an installed package) or as
``path/to/file.py:function`` (that file, loaded explicitly). A reward function may also offer
``score_batch(list[Melody]) -> array`` to score many melodies in one call (a
reward model does); :func:`score_melodies` uses it when present.

A function that raises, returns NaN/inf or a value beyond ±``MAX_ABS_REWARD``
stops the run with an error that names the function and the melody, never a
silent fallback.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import Melody

RewardFunction = Callable[[Melody], float]

MAX_ABS_REWARD = 1e6
"""Largest reward magnitude accepted: past it, PPO's returns, advantages and losses overflow
(1e300 squared is inf, and the policy's logits turn NaN). Rewards are scores near 1; scale larger ones down."""


class RewardFunctionError(RLComposerError):
    """A reward function that cannot be loaded, or that failed on a melody."""


def _load_file(path_text: str, spec: str, what: str):
    """The module of the Python file ``path_text`` (``path/to/file.py``), loaded under its own name."""
    import hashlib
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise RewardFunctionError(f"{what} '{spec}': no file {path}")
    name = f"_rlcomposer_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise RewardFunctionError(f"{what} '{spec}': cannot load {path} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as error:
        del sys.modules[name]
        if not isinstance(error, Exception):
            raise
        raise RewardFunctionError(
            f"{what} '{spec}': cannot import {path} ({type(error).__name__}: {error})") from None
    return module


def load_callable(spec: str, what: str = "reward function") -> Callable:
    """Import ``package.module:function`` or load ``path/to/file.py:function``.

    The function may be a dotted attribute path. A module name is looked up on
    ``sys.path`` as it stands (the CLI puts the working directory last); a ``.py``
    path is loaded from that file only.
    """
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute:
        raise RewardFunctionError(f"{what} '{spec}' is not of the form package.module:function "
                                  "or path/to/file.py:function")
    if module_name.endswith(".py"):
        target = _load_file(module_name, spec, what)
    else:
        try:
            target = importlib.import_module(module_name)
        except Exception as error:  # ImportError, or anything the module raises on import
            raise RewardFunctionError(
                f"{what} '{spec}': cannot import module '{module_name}' ({type(error).__name__}: {error})"
            ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise RewardFunctionError(f"{what} '{spec}': module '{module_name}' has no '{attribute}'")
        target = getattr(target, part)
    if not callable(target):
        raise RewardFunctionError(f"{what} '{spec}' is not callable")
    return target


def resolve_reward(spec: str, expected_prior=None) -> RewardFunction:
    """A reward function from ``module:function``, or a reward-model directory
    (written by ``rlcomposer reward train``; its ensemble mean is the reward; a personal
    model's, from ``reward train --per-rater``, is the population's: pick a rater with
    :meth:`~rlcomposer.preferences.personal_reward.PersonalRewardModel.for_rater`).

    ``expected_prior`` (a prior, its directory or ``"prior"``) makes a reward
    model trained from another prior an error.
    """
    from pathlib import Path

    if Path(spec).is_dir() or (":" not in spec and spec.strip()):
        from rlcomposer.preferences.personal_reward import (
            is_personal_reward_model,
            load_personal_reward_model,
        )
        from rlcomposer.preferences.reward_model import load_reward_model

        if is_personal_reward_model(spec):
            return load_personal_reward_model(spec, expected_prior=expected_prior)

        return load_reward_model(spec, expected_prior=expected_prior)
    return load_callable(spec)


def pessimistic_scores(member_scores: np.ndarray, k: float) -> np.ndarray:
    """An ensemble's members' scores ``[K, N]`` as one pessimistic score each, ``[N]``: their mean
    less ``k`` times their standard deviation (:class:`ConservativeReward`'s score)."""
    scores = np.asarray(member_scores, dtype=np.float64)
    return scores.mean(axis=0) - k * scores.std(axis=0)


class ConservativeReward:
    """A pessimistic reward from an ensemble: the members' mean minus ``k`` times their spread.

    Where the labels say little, the members disagree and the reward is low, so
    an optimiser gains nothing by running to melodies the ratings never
    covered (a lower confidence bound, as in conservative model-based RL).
    The ensemble must offer ``member_scores(melodies) -> [K, N]``.
    """

    def __init__(self, ensemble, k: float):
        if not hasattr(ensemble, "member_scores"):
            raise RewardFunctionError("reward_uncertainty needs a reward model (an ensemble), "
                                      "not a module:function reward")
        if not (math.isfinite(k) and k >= 0):
            raise RewardFunctionError(f"reward_uncertainty must be 0 or more, got {k}")
        self.ensemble, self.k = ensemble, k

    def score_batch(self, melodies: Sequence[Melody]) -> np.ndarray:
        return pessimistic_scores(self.ensemble.member_scores(melodies), self.k)

    def __call__(self, melody: Melody) -> float:
        return float(self.score_batch([melody])[0])


def _describe(melody: Melody, index: int) -> str:
    head = " ".join(str(int(t)) for t in melody.tokens[:16])
    return f"melody {index} (tokens {head}{' ...' if melody.num_steps > 16 else ''})"


def _refuse(name: str, value: float, melody: Melody, index: int) -> None:
    """Raise the one-line error for a non-finite or absurdly large score."""
    why = "" if not math.isfinite(value) else f", beyond ±{MAX_ABS_REWARD:g} (scale the reward down)"
    raise RewardFunctionError(f"{name} returned {value:g}{why} for {_describe(melody, index)}")


def reward_name(reward: RewardFunction) -> str:
    """How messages name a reward: ``reward function module:function``, else its type (a reward model)."""
    module, qualname = getattr(reward, "__module__", None), getattr(reward, "__qualname__", None)
    if module and qualname:
        return f"reward function {module}:{qualname}"
    return f"reward {type(reward).__name__}"


def score_melodies(reward: RewardFunction, melodies: Sequence[Melody], name: str | None = None) -> np.ndarray:
    """Score every melody; an exception, a non-finite score or one beyond ±:data:`MAX_ABS_REWARD`
    raises RewardFunctionError naming ``name`` (default :func:`reward_name`) and the melody."""
    name = reward_name(reward) if name is None else name
    batch = getattr(reward, "score_batch", None)
    if batch is not None:
        scores = np.asarray(batch(list(melodies)), dtype=np.float64)
        bad = np.flatnonzero(~(np.abs(scores) <= MAX_ABS_REWARD))
        if bad.size:
            _refuse(name, float(scores[bad[0]]), melodies[bad[0]], int(bad[0]))
        return scores
    scores = np.empty(len(melodies), dtype=np.float64)
    for index, melody in enumerate(melodies):
        try:
            value = float(reward(melody))
        except Exception as error:
            raise RewardFunctionError(
                f"{name} raised {type(error).__name__}: {error} on {_describe(melody, index)}"
            ) from None
        if not abs(value) <= MAX_ABS_REWARD:
            _refuse(name, value, melody, index)
        scores[index] = value
    return scores
