"""Reward models loaded once per directory and process, and reloaded when their files change.

The app and the dashboard rerun on every click; this keeps one loaded
ensemble per directory, with a cache of its scores per (database, melody id)
(melodies never change). A personal reward model's directory (``reward train
--per-rater``, told by the kind saved in it) loads as a
:class:`~rlcomposer.preferences.personal_reward.PersonalRewardModel` (its
population's scores, and per-rater ones for active selection).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rlcomposer.checkpoints import CONFIG_FILE, MODEL_FILE
from rlcomposer.preferences.personal_reward import (
    is_personal_reward_model,
    load_personal_reward_model,
)
from rlcomposer.preferences.reward_model import load_reward_model

_CACHE: dict[str, tuple[tuple, Any, dict[tuple[str, int], float]]] = {}
_CACHE_LOCK = threading.Lock()


def _directory_stamp(directory: Path) -> tuple:
    """Changes when the reward-model directory's files change (a retrained model is reloaded)."""
    stamp = []
    for name in (CONFIG_FILE, MODEL_FILE):
        try:
            info = (directory / name).stat()
            stamp.append((name, info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append((name, None, None))
    return tuple(stamp)


def load_reward_model_cached(directory: str | Path):
    """:func:`~rlcomposer.preferences.reward_model.load_reward_model` (for a personal model's directory
    :func:`~rlcomposer.preferences.personal_reward.load_personal_reward_model`), cached per directory
    in this process.

    Raises :class:`~rlcomposer.checkpoints.CheckpointError` (an RLComposerError)
    when the directory is missing or corrupt; failures are not cached."""
    path = Path(directory).expanduser().resolve()
    key, stamp = str(path), _directory_stamp(path)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        ensemble = (load_personal_reward_model(path) if is_personal_reward_model(path)
                    else load_reward_model(path))
        _CACHE[key] = (stamp, ensemble, {})
        return ensemble


def clear_reward_model_cache() -> None:
    """Forget every cached reward model (tests; after deleting a directory)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def cached_scores(ensemble) -> dict[tuple[str, int], float]:
    """Score cache of a cached ensemble per (database, melody id) (melodies never change), else a fresh dict."""
    with _CACHE_LOCK:
        for _stamp, cached, scores in _CACHE.values():
            if cached is ensemble:
                return scores
    return {}
