"""Old module names that users already type, answered by the modules' new homes.

``rlcomposer.melody``, ``rlcomposer.music_theory:theory_reward``,
``rlcomposer.environment`` and the other flat names of version 0.1 keep
working, with a :class:`DeprecationWarning` naming today's module: importing
one gives the very module object at its new place (so ``isinstance`` checks and
monkeypatching agree). Nothing is imported until an old name is asked for.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED_MODULES = {
    "rlcomposer.melody": "rlcomposer.music.melody",
    "rlcomposer.audio": "rlcomposer.music.audio",
    "rlcomposer.metrics": "rlcomposer.music.metrics",
    "rlcomposer.music_theory": "rlcomposer.music.theory",
    "rlcomposer.prior_training": "rlcomposer.prior.training",
    "rlcomposer.ngram": "rlcomposer.prior.ngram",
    "rlcomposer.model_registry": "rlcomposer.prior.registry",
    "rlcomposer.generation": "rlcomposer.prior.generation",
    "rlcomposer.reward_functions": "rlcomposer.preferences.reward_functions",
    "rlcomposer.reward_model": "rlcomposer.preferences.reward_model",
    "rlcomposer.listeners": "rlcomposer.preferences.listeners",
    "rlcomposer.environment": "rlcomposer.rl.environment",
    "rlcomposer.policy": "rlcomposer.rl.policy",
    "rlcomposer.sequence_ppo": "rlcomposer.rl.sequence_ppo",
    "rlcomposer.tuning": "rlcomposer.rl.tuning",
    "rlcomposer.evaluation": "rlcomposer.experiments.evaluation",
    "rlcomposer.experiment": "rlcomposer.experiments.loop",
}
"""Old dotted name -> the module that now holds its code."""


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        warnings.warn(f"{spec.name} is an old name of {self.target}: import {self.target} instead",
                      DeprecationWarning, stacklevel=2)  # the importer (warnings skips importlib's frames)
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        """The module ran at its new place already."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds an old module name in :data:`MOVED_MODULES` and loads its new home under it."""

    def find_spec(self, fullname, path=None, target=None):
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new_name))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
