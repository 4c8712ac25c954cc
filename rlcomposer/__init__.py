"""rlcomposer: compose melodies and learn, from listeners' ratings, which ones they like.

One subpackage per stage of the pipeline, from low to high; a stage imports
only the stages below it (``tests/test_architecture.py`` checks it with
import-linter contracts in ``pyproject.toml``):

=========================  =====================================================
``rlcomposer.errors``,     the foundation every stage shares: the project's
``config``, ``checkpoints`` error, typed configs from YAML, model directories
``rlcomposer.music``       the melody value object, audio, music metrics, theory
``rlcomposer.corpus``      the folk tunes bundled with music21: ABC parsing, cache
``rlcomposer.prior``       the melody prior, its training, the n-gram baseline,
                           sampling and export, models by name
``rlcomposer.preferences`` reward functions, the reward model, listeners
``rlcomposer.rl``          the Gymnasium environment, the policy, PPO, tuning, KL,
                           best-of-N
``rlcomposer.feedback``    the rating database, its statistics, item selection,
                           simulated raters writing through the store
``rlcomposer.experiments`` the closed loop, evaluation and reports
``rlcomposer.cli``         the command line (and ``feedback_app/``, the app)
=========================  =====================================================

Importing ``rlcomposer`` is light (no torch): it registers the Gymnasium
environment ``rlcomposer/Melody-v0`` by its entry-point string, so
``gymnasium.make("rlcomposer/Melody-v0")`` works, and keeps the flat module
names of version 0.1 (``rlcomposer.melody``, ``rlcomposer.music_theory``, ...)
importable, with a ``DeprecationWarning`` naming today's module (:mod:`rlcomposer._moved`).
"""

from rlcomposer import _startup

if _startup.starting_with_dash_m():  # `python -m rlcomposer.cli`: no numpy.py of the working directory
    _startup.working_directory_last()

from gymnasium.envs.registration import register as _register  # noqa: E402
from gymnasium.envs.registration import registry as _registry  # noqa: E402

from rlcomposer import _moved  # noqa: E402

__version__ = "0.1.0"

ENV_ID = "rlcomposer/Melody-v0"

if ENV_ID not in _registry:
    _register(id=ENV_ID, entry_point="rlcomposer.rl.environment:MelodyEnv")
_moved.install()
