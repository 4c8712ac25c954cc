"""rlcomposer: compose melodies and learn, from listeners' ratings, which ones they like.

The pipeline, one module per concept: :mod:`~rlcomposer.melody` (the value object),
:mod:`~rlcomposer.corpus` (folk tunes from music21), :mod:`~rlcomposer.prior` and
:mod:`~rlcomposer.prior_training` (the melody prior), :mod:`~rlcomposer.generation`,
:mod:`~rlcomposer.audio`, :mod:`~rlcomposer.metrics`, :mod:`~rlcomposer.environment`
(``rlcomposer/Melody-v0``), :mod:`~rlcomposer.policy`, :mod:`~rlcomposer.sequence_ppo`,
:mod:`~rlcomposer.tuning`, :mod:`rlcomposer.feedback` (ratings database and selection),
:mod:`~rlcomposer.listeners`, :mod:`~rlcomposer.reward_model`,
:mod:`~rlcomposer.experiment` (the closed loop) and :mod:`~rlcomposer.cli`.
"""

__version__ = "0.1.0"
