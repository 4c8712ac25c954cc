"""The reward model: what listeners like, learnt from their ratings.

An ensemble of K members, each a small scalar head (``head_hidden`` units,
input dropout, weight decay) on one melody *representation*:

* interpretable musical descriptors (range, intervals, leap resolution,
  contour, rhythm, rests, syncopation, key fit, cadence, climax, repetition;
  see :mod:`rlcomposer.preferences.descriptors`), which see a melody's global
  shape;
* optionally (``summary``), beside them, the prior's own network read over the
  melody: :class:`MelodyEncoder` holds a copy of a
  :class:`~rlcomposer.prior.model.MelodyPrior` and runs its ``embed`` and
  ``gru`` (mean / max / last state, token-embedding statistics), whole or
  projected on its first ``summary_components`` principal components;
* every input standardised on reference melodies sampled from the prior
  (``input_norm="reference"``; the statistics are stored with the weights).

The defaults were chosen by measurement on the choosing half of the listener
panel (``experiments/reward_calibration.py``): at 300 noisy comparisons the
descriptors alone ranked fresh pairs best; the whole GRU summary (hundreds of
numbers) made the heads overfit within an epoch or two, a few of its principal
components added nothing measurable, and fine-tuning the encoder neither
(at ten times the cost).

Training (:func:`train_reward_model`):

* pairwise comparisons with Bradley–Terry: P(A beats B) = sigmoid(r(A) - r(B)),
  binary cross-entropy with target 1 (A), 0 (B) or ½ (tie); skips are ignored;
* star ratings z-scored per rater (each rater's own mean and spread, so a
  generous rater and a strict one mean the same), fitted by regression:
  ``a · r(melody) + b ≈ z`` with a learnt scale ``a`` and offset ``b`` per
  member, weighted by ``star_weight``;
* each member trains on its own bootstrap resample of the comparisons; the
  comparisons a member did not draw (its *out-of-bag* comparisons) are its
  held-out data: after every epoch the ensemble's out-of-bag log-loss is
  measured, and the epoch where it is lowest is kept (``early_stopping``,
  recorded in ``metrics["selection"]["epoch"]``);
* temperature scaling (``calibrate``): one temperature T, fitted on the same
  out-of-bag comparisons, divides every score, so that
  P(A beats B) = sigmoid(r(A) - r(B)) is calibrated;
* evaluation by ``cv_folds``-fold cross-validation *of the whole procedure*
  (bootstrap, early stopping and temperature inside each fold) over the
  comparisons: every comparison is predicted once by a model that never saw
  it; accuracy (with a 95% Wilson interval), log-loss, Brier score and ECE
  (``calibration_bins`` fixed bins) go in ``metrics["held_out"]``, per fold in
  ``metrics["folds"]``. The returned model is then trained on every comparison.
  With ``cv_folds`` 0 the older hold-out split is used instead
  (``validation_fraction`` of the comparisons, never trained on);
* with ``freeze_encoder`` (the default) the encoder is shared and frozen, the
  representation is computed once and only the heads train (seconds, and
  scoring runs the GRU once for all members); otherwise each member fine-tunes
  its own copy of the encoder at ``encoder_learning_rate``.

The reward (``ensemble(melody)``, :meth:`RewardEnsemble.score_batch`) is the
members' mean score on the (calibrated) Bradley–Terry scale: a difference of 1
between two melodies means the model expects the first to win 73% of
comparisons (:meth:`RewardEnsemble.preference_probability`). It is centred on
the training melodies. The members' disagreement is the uncertainty
(:meth:`RewardEnsemble.preference_variance`, used by active selection).

Melodies everywhere: labels carry :class:`~rlcomposer.music.melody.Melody` objects
(a bare token array is 4/4 in C without a pick-up); the descriptors read each in its
own metre, key and pick-up, the encoder is told its metre, mode and pick-up, and the
reference melodies the inputs are standardised on are prior melodies of the training
melodies' shapes. A reward model records those shapes (metre, length in steps,
pick-up: :attr:`RewardEnsemble.shapes`) and refuses a melody of any other shape in
one line naming what it was trained on (a mixture of shapes is said and each
accepted). One saved before the shapes were recorded read every melody as 4/4: it
loads as a 4/4-only model (any length, no pick-up) and refuses other metres, saying
to retrain it.

Saved as a model directory of kind ``reward-model`` (weights only, see
:mod:`rlcomposer.checkpoints`) with a reliability plot of the held-out
comparisons (``reliability.png``); its config records a hash of the prior it
was initialised from, so a reward model is never used with another prior by
mistake.

:data:`LEGACY_CONFIG` is the configuration of the first reward model (K=3,
60 fixed epochs, GRU summary only, no calibration), kept to compare against
(``experiments/reward_calibration.py``).

The parts live in one module each, and this module gathers their public names
(``from rlcomposer.preferences.reward_model import ...`` keeps working):

* :mod:`~rlcomposer.preferences.reward_model_config`: :class:`RewardModelConfig`,
  :data:`LEGACY_CONFIG`, :class:`RewardModelError`;
* :mod:`~rlcomposer.preferences.labels`: :class:`PairLabel`, :class:`StarLabel`,
  :class:`RatingData` and :func:`load_training_data` (the rating store's answers);
* :mod:`~rlcomposer.preferences.ensemble`: :class:`MelodyEncoder`, the members'
  heads and :class:`RewardEnsemble`, :func:`prior_fingerprint`;
* :mod:`~rlcomposer.preferences.calibration`: :func:`evaluate_pairs`,
  :func:`fit_temperature`, :func:`plot_reliability`;
* :mod:`~rlcomposer.preferences.training`: :func:`train_reward_model`;
* :mod:`~rlcomposer.preferences.reward_model_io`: :func:`save_reward_model`,
  :func:`load_reward_model` (with the upgrade of the first format).
"""

from __future__ import annotations

from rlcomposer.confidence_intervals import wilson_interval
from rlcomposer.preferences.calibration import evaluate_pairs, fit_temperature, plot_reliability
from rlcomposer.preferences.ensemble import MelodyEncoder, RewardEnsemble, prior_fingerprint
from rlcomposer.preferences.labels import PairLabel, RatingData, StarLabel, load_training_data
from rlcomposer.preferences.reward_model_config import (
    LEGACY_CONFIG,
    RewardModelConfig,
    RewardModelError,
)
from rlcomposer.preferences.reward_model_io import (
    KIND,
    RELIABILITY_PLOT,
    load_reward_model,
    save_reward_model,
)
from rlcomposer.preferences.training import train_reward_model

__all__ = [
    "KIND", "LEGACY_CONFIG", "RELIABILITY_PLOT", "MelodyEncoder", "PairLabel", "RatingData", "RewardEnsemble",
    "RewardModelConfig", "RewardModelError", "StarLabel", "evaluate_pairs", "fit_temperature", "load_reward_model",
    "load_training_data", "plot_reliability", "prior_fingerprint", "save_reward_model", "train_reward_model",
    "wilson_interval",
]
