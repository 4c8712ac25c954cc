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

Saved as a model directory of kind ``reward-model`` (weights only, see
:mod:`rlcomposer.checkpoints`) with a reliability plot of the held-out
comparisons (``reliability.png``); its config records a hash of the prior it
was initialised from, so a reward model is never used with another prior by
mistake.

:data:`LEGACY_CONFIG` is the configuration of the first reward model (K=3,
60 fixed epochs, GRU summary only, no calibration), kept to compare against
(``experiments/reward_calibration.py``).
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlcomposer.checkpoints import (
    CONFIG_FILE,
    CheckpointError,
    check_finite_loss,
    read_model_dir,
    save_model_dir,
)
from rlcomposer.config import ConfigError, config_from_dict, config_to_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import HOLD, Melody
from rlcomposer.preferences.choices import CHOICE_SCORE
from rlcomposer.preferences.descriptors import DESCRIPTOR_NAMES, describe
from rlcomposer.prior.model import (
    ConditionBatch,
    MelodyCondition,
    MelodyPrior,
    PriorConfig,
    load_prior,
)
from rlcomposer.validation import (
    AT_LEAST_ONE,
    FRACTION,
    MAX_COUNT,
    NON_NEGATIVE,
    SEED,
    THREADS,
    Range,
    above,
    between,
    check_config,
)

KIND = "reward-model"
RELIABILITY_PLOT = "reliability.png"
SUMMARIES = ("mean", "max", "last", "tokens")
"""What :class:`MelodyEncoder` can read off the GRU: its states' mean, max and
last value, and the token embeddings' mean, max and min (``tokens``)."""
INPUT_NORMS = ("reference", "layer")


class RewardModelError(RLComposerError):
    """Training data or a setting the reward model cannot work with."""


# -------------------------------------------------------------------- config
@dataclass(frozen=True)
class RewardModelConfig:
    """How a reward model is trained. Stored with every reward-model checkpoint."""

    ensemble_size: int = 10
    """K: members, each trained on its own bootstrap resample of the training comparisons (3 or more)."""
    epochs: int = 200
    """Most passes over each member's (resampled) comparisons; with early_stopping, fewer are kept."""
    early_stopping: bool = True
    """Keep the epoch with the lowest out-of-bag log-loss (the comparisons no member's bootstrap drew
    count for the members that did not draw them) instead of the last one."""
    patience: int = 20
    """Early stopping: stop after this many epochs without a better out-of-bag log-loss."""
    calibrate: bool = True
    """Temperature scaling: divide the scores by one temperature fitted on the out-of-bag comparisons."""
    cv_folds: int = 5
    """Folds of the cross-validation that measures the held-out metrics (the final model trains on
    every comparison); 0 holds out ``validation_fraction`` of the comparisons instead."""
    learning_rate: float = 1e-3
    """Adam learning rate of the heads."""
    weight_decay: float = 1e-2
    """AdamW weight decay of the heads (and of a fine-tuned encoder)."""
    dropout: float = 0.3
    """Dropout on each head's input while training."""
    validation_fraction: float = 0.2
    """Share of comparisons held out (split by comparison) when cv_folds is 0."""
    star_weight: float = 0.5
    """Weight of the star-rating loss (per-rater z-scored stars, regression) beside the comparison loss."""
    freeze_encoder: bool = True
    """Keep the prior's encoder fixed and train only the heads (fast); False fine-tunes a copy per member."""
    encoder_learning_rate: float = 3e-4
    """Learning rate of a fine-tuned encoder (only when freeze_encoder is false)."""
    summary: tuple[str, ...] = ()
    """What the heads read off the GRU: any of mean, max, last (its states), tokens (token embeddings);
    empty: descriptors only (the GRU is not run)."""
    summary_components: int = 0
    """Project the GRU summary on its first principal components on the reference melodies (0: keep it
    whole, hundreds of numbers, which a few hundred comparisons overfit)."""
    descriptors: bool = True
    """Give the heads the musical descriptors (rlcomposer/preferences/descriptors.py) beside the GRU."""
    input_norm: str = "reference"
    """``reference``: z-score every input on prior melodies; ``layer``: LayerNorm in each head."""
    reference_melodies: int = 512
    """Prior melodies sampled to standardise the inputs on (input_norm reference, or descriptors)."""
    head_hidden: int = 32
    """Width of each member's head (one hidden layer); 0 is a linear head."""
    batch_size: int = 64
    """Comparisons per gradient step."""
    min_comparisons: int = 20
    """Fewest usable (non-skip) comparisons to train on; fewer is an error."""
    calibration_bins: int = 10
    """Fixed bins (of P(A beats B) on 0..1) of the expected calibration error and the reliability plot."""
    seed: int = 0
    """Fixes the folds, the bootstrap resamples, the reference melodies and the initial heads."""
    threads: int = 1
    """Torch CPU threads (the heads are small: more threads mostly contend on a shared machine)."""
    prior: str = "prior"
    """The prior whose weights initialise the encoder: ``prior`` (shipped) or a model directory."""

    def __post_init__(self) -> None:
        check_config(self, {
            "ensemble_size": between(3, 1000, whole=True), "epochs": between(1, 100_000, whole=True),
            "patience": AT_LEAST_ONE, "cv_folds": between(0, 20, whole=True), "learning_rate": above(0, 1),
            "weight_decay": NON_NEGATIVE, "dropout": FRACTION, "validation_fraction": Range(0, 0.9, True, True),
            "star_weight": NON_NEGATIVE, "encoder_learning_rate": above(0, 1),
            "summary_components": between(0, 100_000, whole=True), "reference_melodies": between(16, 100_000, whole=True),
            "head_hidden": between(0, 4096, whole=True), "batch_size": between(1, 65_536, whole=True),
            "min_comparisons": between(5, MAX_COUNT, whole=True), "calibration_bins": between(1, 1000, whole=True),
            "seed": SEED, "threads": THREADS})
        if self.ensemble_size < 3:
            raise RewardModelError(f"ensemble_size {self.ensemble_size} must be at least 3")
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1 or self.patience < 1:
            raise RewardModelError("epochs, patience, batch_size and threads must be at least 1")
        if self.head_hidden < 0:
            raise RewardModelError(f"head_hidden {self.head_hidden} must be 0 (linear) or more")
        if not 0.0 < self.validation_fraction < 0.9:
            raise RewardModelError(f"validation_fraction {self.validation_fraction} must be between 0 and 0.9")
        if self.cv_folds < 0 or self.cv_folds == 1 or self.cv_folds > 20:
            raise RewardModelError(f"cv_folds {self.cv_folds} must be 0 (a hold-out split) or 2-20")
        if self.star_weight < 0 or self.learning_rate <= 0 or self.encoder_learning_rate <= 0 \
                or self.weight_decay < 0:
            raise RewardModelError("star_weight and weight_decay must be 0 or more, learning rates positive")
        if not 0.0 <= self.dropout < 1.0:
            raise RewardModelError(f"dropout {self.dropout} must be in 0..1")
        if self.min_comparisons < 5:
            raise RewardModelError(f"min_comparisons {self.min_comparisons} must be at least 5")
        if self.calibration_bins < 1:
            raise RewardModelError("calibration_bins must be at least 1")
        unknown = [s for s in self.summary if s not in SUMMARIES]
        if unknown or len(set(self.summary)) != len(self.summary):
            raise RewardModelError(f"summary {','.join(self.summary)} must be distinct names of {', '.join(SUMMARIES)}")
        if not self.summary and not self.descriptors:
            raise RewardModelError("the heads need an input: give a GRU summary or descriptors (or both)")
        if self.summary_components < 0 or (self.summary_components and not self.summary):
            raise RewardModelError(f"summary_components {self.summary_components} must be 0, or positive with a summary")
        if self.summary_components > self.reference_melodies:
            raise RewardModelError("summary_components must not exceed reference_melodies")
        if self.input_norm not in INPUT_NORMS:
            raise RewardModelError(f"input_norm {self.input_norm!r} must be one of {', '.join(INPUT_NORMS)}")
        if self.reference_melodies < 16:
            raise RewardModelError(f"reference_melodies {self.reference_melodies} must be at least 16")

    @property
    def needs_reference(self) -> bool:
        """Are inputs standardised (or projected) on sampled prior melodies?"""
        return self.input_norm == "reference" or self.descriptors or self.summary_components > 0


LEGACY_CONFIG = RewardModelConfig(
    ensemble_size=3, epochs=60, learning_rate=3e-3, early_stopping=False, calibrate=False, cv_folds=0, weight_decay=1e-3,
    dropout=0.0, summary=("mean", "max", "last", "tokens"), descriptors=False, input_norm="layer",
    head_hidden=64)
"""The first reward model's settings (before early stopping, calibration, descriptors and k-fold)."""


# ---------------------------------------------------------------------- data
@dataclass(frozen=True)
class PairLabel:
    """One comparison: ``choice`` is ``a``, ``b``, ``tie`` or ``skip`` (about tokens_a / tokens_b)."""

    tokens_a: np.ndarray
    tokens_b: np.ndarray
    choice: str
    rater: str = "unknown"
    melody_a_id: int | None = None
    melody_b_id: int | None = None


@dataclass(frozen=True)
class StarLabel:
    """One star rating (1-5) of a melody by a rater."""

    tokens: np.ndarray
    stars: int
    rater: str = "unknown"
    melody_id: int | None = None


@dataclass
class RatingData:
    """Ratings read from the store, ready to train on."""

    comparisons: list[PairLabel] = field(default_factory=list)
    stars: list[StarLabel] = field(default_factory=list)
    tag: str | None = None
    rater: str | None = None

    def summary(self) -> dict[str, Any]:
        choices = {c: sum(1 for p in self.comparisons if p.choice == c) for c in ("a", "b", "tie", "skip")}
        return {"comparisons": len(self.comparisons), "choices": choices, "stars": len(self.stars),
                "raters": sorted({p.rater for p in self.comparisons} | {s.rater for s in self.stars})}


def load_training_data(store, tag: str | None = None, rater: str | None = None) -> RatingData:
    """Every comparison and star rating in ``store`` (melodies of ``tag``, by ``rater``, if given)."""
    tags = [tag] if tag else None
    raters = {r.id: r.name for r in store.raters()}
    if rater is not None and rater not in raters.values():
        raise RewardModelError(f"rater {rater!r} has no ratings in the database "
                               f"(raters: {', '.join(sorted(raters.values())) or 'none'})")
    comparisons = [c for c in store.comparisons(tags) if rater is None or raters[c.rater_id] == rater]
    stars = [s for s in store.ratings(tags) if rater is None or raters[s.rater_id] == rater]
    ids = {c.melody_a_id for c in comparisons} | {c.melody_b_id for c in comparisons} | {
        s.melody_id for s in stars}
    melodies = store.get_melodies(ids) if ids else {}
    tokens = {i: np.asarray(r.melody.tokens, dtype=np.int64) for i, r in melodies.items()}
    return RatingData(
        comparisons=[PairLabel(tokens[c.melody_a_id], tokens[c.melody_b_id], c.choice, raters[c.rater_id],
                               c.melody_a_id, c.melody_b_id) for c in comparisons],
        stars=[StarLabel(tokens[s.melody_id], s.stars, raters[s.rater_id], s.melody_id) for s in stars],
        tag=tag, rater=rater)


# --------------------------------------------------------------------- model
def prior_fingerprint(prior: MelodyPrior) -> str:
    """A short hash of a prior's weights: which prior a reward model was initialised from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(prior.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class MelodyEncoder(nn.Module):
    """A prior read over a whole melody: the GRU summary ``[B, feature_size]``.

    Holds a :class:`~rlcomposer.prior.model.MelodyPrior` (a copy of the prior's
    weights: :meth:`from_prior`) and runs its own ``embed`` and ``gru``, so the
    architecture is the prior's. The input at step ``t`` is token ``t-1`` with
    the metric position of ``t`` (BOS before step 0), exactly as the prior was
    trained; one extra step after the last token lets the final state see the
    whole melody. ``summary`` names what is read off: the states' ``mean``,
    ``max`` and ``last`` value, and the token embeddings' mean, max and min
    (``tokens``), in that order.
    """

    def __init__(self, config: PriorConfig, summary: Sequence[str] = ("mean", "last")):
        super().__init__()
        self.config = config
        self.summary = tuple(s for s in SUMMARIES if s in summary)
        self.prior = MelodyPrior(config)

    @classmethod
    def from_prior(cls, prior: MelodyPrior, summary: Sequence[str] = ("mean", "last")) -> MelodyEncoder:
        encoder = cls(prior.config, summary)
        encoder.prior.load_state_dict(prior.state_dict())
        encoder.eval()
        return encoder

    @property
    def feature_size(self) -> int:
        hidden = sum(s in self.summary for s in ("mean", "max", "last")) * self.config.hidden_size
        return hidden + (3 * self.config.embedding_dim if "tokens" in self.summary else 0)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor,
                condition: ConditionBatch | None = None) -> torch.Tensor:
        """Summaries of ``tokens`` (``lengths`` long); a conditioned prior is told each melody's
        length and ``condition``'s metre and mode (default 4/4 major)."""
        batch, length = tokens.shape
        if not self.summary:
            return torch.zeros(batch, 0)
        if condition is None and self.config.conditioned:
            default = self.prior.condition_batch(MelodyCondition(), batch)
            condition = ConditionBatch(default.metre_ids, default.mode_ids, lengths.long())
        bos = torch.full((batch, 1), self.config.bos_token, dtype=tokens.dtype)
        steps = torch.arange(length + 1).view(1, -1).expand(batch, -1)
        output, _ = self.prior.gru(self.prior.embed(torch.cat([bos, tokens], dim=1), steps, condition))
        output = output[:, 1:]  # states that have read at least one token
        mask = (torch.arange(length).view(1, -1) < lengths.view(-1, 1)).unsqueeze(-1)
        count = lengths.view(-1, 1).clamp(min=1)
        parts = []
        if "mean" in self.summary:
            parts.append((output * mask).sum(1) / count)
        if "max" in self.summary:
            parts.append(output.masked_fill(~mask, float("-inf")).max(1).values)
        if "last" in self.summary:
            parts.append(output[torch.arange(batch), (lengths - 1).clamp(min=0)])
        if "tokens" in self.summary:
            played = self.prior.token_embedding(tokens)  # what was played, order aside
            parts += [(played * mask).sum(1) / count, played.masked_fill(~mask, float("-inf")).max(1).values,
                      played.masked_fill(~mask, float("inf")).min(1).values]
        return torch.cat(parts, dim=-1)


class MemberHeads(nn.Module):
    """The K members' scalar heads side by side (one batched computation), plus the
    scale and offset per member that map its score to z-scored stars.

    A head is (LayerNorm, with ``layer_norm``) → dropout → Linear(hidden) → GELU →
    Linear(1), or a linear map when ``hidden`` is 0. Input ``[N, F]`` (shared by
    the members) or ``[K, N, F]``; output ``[K, N]``.
    """

    def __init__(self, members: int, features: int, hidden: int, dropout: float = 0.0,
                 layer_norm: bool = False):
        super().__init__()
        self.members, self.features, self.hidden = members, features, hidden
        self.dropout = dropout
        self.layer_norm = layer_norm
        if layer_norm:
            self.norm_weight = nn.Parameter(torch.ones(members, features))
            self.norm_bias = nn.Parameter(torch.zeros(members, features))
        width = hidden or 1

        def uniform(*shape: int, fan_in: int) -> nn.Parameter:
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.weight1 = uniform(members, features, width, fan_in=features)
        self.bias1 = uniform(members, width, fan_in=features)
        if hidden:
            self.weight2 = uniform(members, hidden, fan_in=hidden)
            self.bias2 = uniform(members, fan_in=hidden)
        self.star_scale = nn.Parameter(torch.full((members,), 0.5))
        self.star_offset = nn.Parameter(torch.zeros(members))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.unsqueeze(0).expand(self.members, -1, -1) if features.dim() == 2 else features
        if self.layer_norm:
            x = F.layer_norm(x, (self.features,)) * self.norm_weight.unsqueeze(1) + self.norm_bias.unsqueeze(1)
        if self.dropout and self.training:
            x = F.dropout(x, self.dropout, training=True)
        h = torch.baddbmm(self.bias1.unsqueeze(1), x, self.weight1)  # [K, N, width]
        if not self.hidden:
            return h.squeeze(-1)
        return torch.bmm(F.gelu(h), self.weight2.unsqueeze(-1)).squeeze(-1) + self.bias2.unsqueeze(1)


def _pad(token_rows: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = np.array([len(t) for t in token_rows], dtype=np.int64)
    if lengths.size and lengths.min() < 1:
        raise RewardModelError("a melody to score has no tokens")
    width = int(lengths.max()) if lengths.size else 1
    batch = np.full((len(token_rows), width), HOLD, dtype=np.int64)
    for i, row in enumerate(token_rows):
        batch[i, :len(row)] = row
    return torch.from_numpy(batch), torch.from_numpy(lengths)


def _token_rows(melodies: Sequence[Melody | np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(m.tokens if isinstance(m, Melody) else m, dtype=np.int64) for m in melodies]


class RewardEnsemble(nn.Module):
    """K reward members; calling it on a melody gives the mean score (a reward function).

    Buffers: ``input_mean`` / ``input_std`` (the standardisation of the heads'
    input, measured on prior melodies), ``offset`` (each member's centre) and
    ``temperature`` (divides every score: the calibration).
    """

    def __init__(self, prior_config: PriorConfig, config: RewardModelConfig, prior_hash: str,
                 metrics: dict[str, Any] | None = None):
        super().__init__()
        self.prior_config = prior_config
        self.config = config
        self.prior_hash = prior_hash
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.held_out_predictions: dict[str, np.ndarray] = {}
        """After training (not saved): each held-out comparison's index, predicted and uncalibrated
        P(A beats B) and target."""
        # no summary: the GRU is never run, and no copy of the prior is kept
        shared, own = bool(config.summary) and config.freeze_encoder, bool(config.summary) and not config.freeze_encoder
        self.encoder = MelodyEncoder(prior_config, config.summary) if shared else None
        self.encoders = nn.ModuleList(
            MelodyEncoder(prior_config, config.summary) for _ in range(config.ensemble_size)) if own else None
        summary_size = MelodyEncoder(prior_config, config.summary).feature_size
        if config.summary_components > summary_size:
            raise RewardModelError(f"summary_components {config.summary_components} is more than the "
                                   f"{summary_size} numbers of the GRU summary")
        self.encoder_features = config.summary_components or summary_size
        features = self.encoder_features + (len(DESCRIPTOR_NAMES) if config.descriptors else 0)
        if config.summary_components:
            self.register_buffer("summary_center", torch.zeros(summary_size))
            self.register_buffer("summary_projection", torch.zeros(summary_size, config.summary_components))
        self.heads = MemberHeads(config.ensemble_size, features, config.head_hidden, config.dropout,
                                 layer_norm=config.input_norm == "layer")
        self.register_buffer("input_mean", torch.zeros(features))
        self.register_buffer("input_std", torch.ones(features))
        self.register_buffer("offset", torch.zeros(config.ensemble_size))
        self.register_buffer("temperature", torch.ones(()))
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    @property
    def size(self) -> int:
        return self.config.ensemble_size

    def __repr__(self) -> str:
        return f"RewardEnsemble(K={self.size}, prior={self.prior_hash}, T={float(self.temperature):.2f})"

    # ------------------------------------------------------------- inputs
    def _standardise(self, raw: torch.Tensor) -> torch.Tensor:
        return ((raw - self.input_mean) / self.input_std).clamp(-5.0, 5.0)

    def _descriptor_part(self, rows: Sequence[np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(describe(rows)).float()] if self.config.descriptors else []

    def _combine(self, summary: torch.Tensor, descriptors: list[torch.Tensor]) -> torch.Tensor:
        """GRU summary (projected, with summary_components) beside the descriptors, standardised."""
        if self.config.summary_components:
            summary = (summary - self.summary_center) @ self.summary_projection
        return self._standardise(torch.cat([summary, *descriptors], dim=-1))

    def raw_inputs(self, rows: Sequence[np.ndarray], encoder: MelodyEncoder | None = None) -> torch.Tensor:
        """The heads' input before standardisation: GRU summary (projected) and descriptors, ``[N, F]``."""
        tokens, lengths = _pad(rows)
        encoder = encoder or self.encoder
        summary = encoder(tokens, lengths) if encoder is not None else torch.zeros(len(rows), 0)
        if self.config.summary_components:
            summary = (summary - self.summary_center) @ self.summary_projection
        return torch.cat([summary, *self._descriptor_part(rows)], dim=-1)

    def inputs(self, rows: Sequence[np.ndarray], encoder: MelodyEncoder | None = None) -> torch.Tensor:
        """The heads' input (standardised), ``[N, F]``."""
        return self._standardise(self.raw_inputs(rows, encoder))

    def _member_logits(self, rows: Sequence[np.ndarray]) -> torch.Tensor:
        """Each member's raw score ``[K, N]`` (before centring and temperature)."""
        if self.encoders is None:
            return self.heads(self.inputs(rows))
        tokens, lengths = _pad(rows)
        descriptors = self._descriptor_part(rows)
        stacked = torch.stack([self._combine(enc(tokens, lengths), descriptors) for enc in self.encoders])
        return self.heads(stacked)

    # ------------------------------------------------------------- scoring
    def member_scores(self, melodies: Sequence[Melody | np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Each member's score of each melody, ``[K, N]`` (calibrated Bradley–Terry scale, centred)."""
        rows = _token_rows(melodies)
        if not rows:
            return np.zeros((self.size, 0))
        threads = torch.get_num_threads()
        torch.set_num_threads(min(threads, self.config.threads))
        try:
            chunks = []
            with torch.inference_mode():
                for start in range(0, len(rows), batch_size):
                    logits = self._member_logits(rows[start:start + batch_size])
                    chunks.append(((logits - self.offset.view(-1, 1)) / self.temperature).numpy())
        finally:
            torch.set_num_threads(threads)
        return np.concatenate(chunks, axis=1).astype(np.float64)

    def score_batch(self, melodies: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """The reward of many melodies: the members' mean score, ``[N]``."""
        return self.member_scores(melodies).mean(axis=0)

    def __call__(self, melody: Melody) -> float:  # type: ignore[override]
        """The reward of one melody (the ensemble mean)."""
        return float(self.score_batch([melody])[0])

    def _pair_scores(self, pairs_a: Sequence[Melody | np.ndarray],
                     pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        if len(pairs_a) != len(pairs_b):
            raise RewardModelError(f"{len(pairs_a)} A melodies but {len(pairs_b)} B melodies")
        scores = self.member_scores(list(pairs_a) + list(pairs_b))
        n = len(pairs_a)
        return scores[:, :n] - scores[:, n:]

    def preference_probability(self, pairs_a: Sequence[Melody | np.ndarray],
                               pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """The ensemble's calibrated P(A beats B), ``[N]``: sigmoid of the difference of the rewards."""
        return _sigmoid(self._pair_scores(pairs_a, pairs_b).mean(axis=0))

    def preference_probabilities(self, pairs_a: Sequence[Melody | np.ndarray],
                                 pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """Each member's P(A beats B), ``[K, N]``."""
        return _sigmoid(self._pair_scores(pairs_a, pairs_b))

    def preference_variance(self, pairs_a: Sequence[Melody | np.ndarray],
                            pairs_b: Sequence[Melody | np.ndarray]) -> np.ndarray:
        """Variance across members of P(A beats B), ``[N]``: where the ensemble disagrees."""
        return self.preference_probabilities(pairs_a, pairs_b).var(axis=0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


# --------------------------------------------------------------- evaluation
def _resolve_prior(prior: MelodyPrior | str | Path | None, config: RewardModelConfig) -> MelodyPrior:
    if isinstance(prior, MelodyPrior):
        return prior
    spec = config.prior if prior is None else str(prior)
    return load_prior(spec)


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _ece_many(p: np.ndarray, y: np.ndarray, which: np.ndarray, bins: int) -> np.ndarray:
    """ECE of each row of index-resampled ``[B, n]`` probabilities, targets and bin numbers."""
    rows, n = p.shape
    keys = (np.arange(rows).reshape(-1, 1) * bins + which).ravel()
    sum_p = np.bincount(keys, weights=p.ravel(), minlength=rows * bins).reshape(rows, bins)
    sum_y = np.bincount(keys, weights=y.ravel(), minlength=rows * bins).reshape(rows, bins)
    return np.abs(sum_p - sum_y).sum(axis=1) / n


def evaluate_pairs(probabilities: np.ndarray, targets: np.ndarray, bins: int = 10,
                   intervals: bool = True, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """How well predicted P(A beats B) fit the answers: accuracy, log-loss, Brier score, ECE.

    ``probabilities``: predicted P(A beats B); ``targets``: 1, 0 or ½ (tie).
    Accuracy, ECE and the reliability table use the decided (non-tie) pairs,
    a prediction of exactly ½ scoring half a point; log-loss and the Brier
    score use every pair. The ECE has ``bins`` fixed bins of P(A beats B) on
    0..1. With ``intervals``: a 95% Wilson interval of the accuracy
    (``accuracy_ci95``) and 95% bootstrap intervals over the pairs of the
    log-loss, Brier score and ECE (``resamples`` draws, seeded by ``seed``).
    """
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    targets = np.asarray(targets, dtype=np.float64)
    decided = targets != 0.5
    result: dict[str, Any] = {"pairs": int(targets.size), "decided_pairs": int(decided.sum())}
    losses = -(targets * np.log(probabilities) + (1 - targets) * np.log(1 - probabilities))
    squares = (probabilities - targets) ** 2
    result["log_loss"] = float(losses.mean()) if targets.size else None
    result["brier"] = float(squares.mean()) if targets.size else None
    rng = np.random.default_rng(seed)
    if intervals and targets.size >= 2:
        draws = rng.integers(0, targets.size, size=(resamples, targets.size))
        result["log_loss_ci95"] = [float(v) for v in np.quantile(losses[draws].mean(1), [0.025, 0.975])]
        result["brier_ci95"] = [float(v) for v in np.quantile(squares[draws].mean(1), [0.025, 0.975])]
    edges = np.linspace(0, 1, bins + 1)
    if not decided.any():
        result.update(accuracy=None, ece=None)
        return result
    p, y = probabilities[decided], targets[decided]
    correct = np.where(p == 0.5, 0.5, ((p > 0.5) == (y == 1)).astype(np.float64))
    result["accuracy"] = float(correct.mean())
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    result["ece"] = float(_ece_many(p.reshape(1, -1), y.reshape(1, -1), which.reshape(1, -1), bins)[0])
    if intervals:
        result["accuracy_ci95"] = [float(v) for v in wilson_interval(float(correct.sum()), int(p.size))]
        if p.size >= 2:
            draws = rng.integers(0, p.size, size=(resamples, p.size))
            result["ece_ci95"] = [float(v) for v in np.quantile(
                _ece_many(p[draws], y[draws], which[draws], bins), [0.025, 0.975])]
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(which, weights=p, minlength=bins) / count
        observed = np.bincount(which, weights=y, minlength=bins) / count
    result["reliability"] = {
        "edges": [float(e) for e in edges], "count": [int(c) for c in count],
        "predicted": [None if c == 0 else float(v) for c, v in zip(count, predicted, strict=True)],
        "observed": [None if c == 0 else float(v) for c, v in zip(count, observed, strict=True)],
    }
    return result


def _log_loss(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of P = sigmoid(logits) against targets in 0..1."""
    return float(np.mean(np.logaddexp(0.0, logits) - targets * logits)) if logits.size else math.nan


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature T (0.05-20) minimising the log-loss of sigmoid(logits / T) against targets."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if logits.size == 0 or not np.any(logits):
        return 1.0

    def losses(log_t: np.ndarray) -> np.ndarray:
        scaled = logits.reshape(1, -1) / np.exp(log_t).reshape(-1, 1)
        return np.mean(np.logaddexp(0.0, scaled) - targets.reshape(1, -1) * scaled, axis=1)

    grid = np.linspace(math.log(0.05), math.log(20.0), 241)
    best = float(grid[int(np.argmin(losses(grid)))])
    step = grid[1] - grid[0]
    fine = np.linspace(best - step, best + step, 101)
    return float(np.exp(fine[int(np.argmin(losses(fine)))]))


# ----------------------------------------------------------------- training
def train_reward_model(comparisons: Sequence[PairLabel], star_ratings: Sequence[StarLabel],
                       config: RewardModelConfig = RewardModelConfig(),
                       prior: MelodyPrior | str | Path | None = None,
                       log: Callable[[str], None] | None = print) -> RewardEnsemble:
    """Train a reward ensemble on comparisons and star ratings (see the module docstring).

    Too few usable comparisons raise :class:`RewardModelError` saying how many
    are needed. The returned ensemble's ``metrics`` hold the held-out accuracy
    (and its 95% interval), log-loss, Brier score and ECE, the epoch and
    temperature chosen, and the counts and raters of the data it saw.
    """
    say = log or (lambda _message: None)
    started = time.monotonic()
    usable = [c for c in comparisons if c.choice in CHOICE_SCORE]
    unknown = sorted({c.choice for c in comparisons if c.choice not in CHOICE_SCORE and c.choice != "skip"})
    if unknown:
        raise RewardModelError(f"comparison choice {unknown[0]!r} must be a, b, tie or skip")
    skipped = len(comparisons) - len(usable)
    if len(usable) < config.min_comparisons:
        raise RewardModelError(
            f"too few ratings to train a reward model: {len(usable)} usable comparisons (not skipped)"
            f"{f' and {skipped} skipped' if skipped else ''}; at least {config.min_comparisons} are needed"
            " (collect more with the app or `rlcomposer ratings simulate`)")
    for s in star_ratings:
        if not 1 <= int(s.stars) <= 5:
            raise RewardModelError(f"star rating {s.stars} is outside 1-5")
    prior_model = _resolve_prior(prior, config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(usable, list(star_ratings), skipped, config, prior_model, say, started)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Data:
    """Training data indexed by unique melody."""

    rows: list[np.ndarray]
    pair_a: np.ndarray
    pair_b: np.ndarray
    targets: np.ndarray
    star_index: np.ndarray
    star_z: np.ndarray


def _index_data(usable: Sequence[PairLabel], stars: Sequence[StarLabel]) -> _Data:
    index: dict[bytes, int] = {}
    rows: list[np.ndarray] = []

    def melody_index(tokens: np.ndarray) -> int:
        tokens = np.asarray(tokens, dtype=np.int64)
        key = tokens.tobytes()
        if key not in index:
            index[key] = len(rows)
            rows.append(tokens)
        return index[key]

    pair_a = np.array([melody_index(c.tokens_a) for c in usable], dtype=np.int64)
    pair_b = np.array([melody_index(c.tokens_b) for c in usable], dtype=np.int64)
    targets = np.array([CHOICE_SCORE[c.choice] for c in usable], dtype=np.float64)
    star_index = np.array([melody_index(s.tokens) for s in stars], dtype=np.int64)
    return _Data(rows, pair_a, pair_b, targets, star_index, _zscore_per_rater(stars))


def _template(prior: MelodyPrior, config: RewardModelConfig, rows: Sequence[np.ndarray],
              rng: np.random.Generator) -> RewardEnsemble:
    """An untrained ensemble: the prior's encoder weights and the input standardisation."""
    ensemble = RewardEnsemble(prior.config, config, prior_fingerprint(prior))
    base = MelodyEncoder.from_prior(prior, config.summary) if config.summary else None
    for encoder in ([ensemble.encoder] if ensemble.encoder is not None else list(ensemble.encoders or [])):
        encoder.load_state_dict(base.state_dict())  # type: ignore[union-attr]
    if config.needs_reference:
        lengths, counts = np.unique([len(r) for r in rows], return_counts=True)
        length = int(lengths[int(np.argmax(counts))])
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        reference = list(prior.sample(config.reference_melodies, length, generator))
        if base is not None and config.summary_components:  # principal components on the reference
            with torch.no_grad():
                summary = torch.cat([base(*_pad(reference[s:s + 512])) for s in range(0, len(reference), 512)])
            center = summary.mean(0)
            _, _, right = torch.linalg.svd(summary - center, full_matrices=False)
            ensemble.summary_center.copy_(center)
            ensemble.summary_projection.copy_(right[:config.summary_components].t())
        with torch.no_grad():
            raw = torch.cat([ensemble.raw_inputs(reference[s:s + 512], base)
                             for s in range(0, len(reference), 512)])
        mean, std = raw.mean(0), raw.std(0).clamp(min=1e-3)
        if config.input_norm == "layer":  # the heads normalise the GRU part themselves
            mean[:ensemble.encoder_features] = 0.0
            std[:ensemble.encoder_features] = 1.0
        ensemble.input_mean.copy_(mean)
        ensemble.input_std.copy_(std)
    return ensemble


def _train(usable: list[PairLabel], stars: list[StarLabel], skipped: int, config: RewardModelConfig,
           prior: MelodyPrior, say: Callable[[str], None], started: float) -> RewardEnsemble:
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    data = _index_data(usable, stars)
    n = len(usable)
    order = rng.permutation(n)  # first: the same seed splits the same way whatever the settings
    template = _template(prior, config, data.rows, rng)
    cached: torch.Tensor | None = None
    if template.encoders is None:  # a frozen (or no) encoder: the heads' inputs once
        with torch.no_grad():
            cached = torch.cat([template.inputs(data.rows[s:s + 512]) for s in range(0, len(data.rows), 512)])
    cross_validate = config.cv_folds >= 2
    if cross_validate:
        folds = [np.sort(f) for f in np.array_split(order, min(config.cv_folds, n))]
        final_train = np.arange(n)
        method = f"{len(folds)}-fold cross-validation"
    else:
        n_val = max(2, int(round(config.validation_fraction * n)))
        folds = [np.sort(order[:n_val])]
        final_train = np.sort(order[n_val:])
        method = "hold-out split"
    say(f"reward model: {n} comparisons, {skipped} skipped, {len(stars)} star ratings, "
        f"{len(data.rows)} melodies, K={config.ensemble_size}; held-out metrics by {method}")

    held = np.concatenate(folds)
    member_diff = np.zeros((config.ensemble_size, n))  # calibrated, out of fold
    raw_diff = np.zeros(n)  # the ensemble's before temperature scaling
    fold_rows = []
    if cross_validate:
        for f, fold in enumerate(folds):
            train = np.setdiff1d(np.arange(n), fold)
            fitted, info, scores = _fit(template, data, cached, train, config, rng)
            member_diff[:, fold] = scores[:, data.pair_a[fold]] - scores[:, data.pair_b[fold]]
            raw_diff[fold] = member_diff[:, fold].mean(0) * info["temperature"]
            result = evaluate_pairs(_sigmoid(member_diff[:, fold].mean(0)), data.targets[fold],
                                    config.calibration_bins, intervals=False)
            fold_rows.append({"fold": f, "pairs": result["pairs"], "accuracy": result["accuracy"],
                              "log_loss": result["log_loss"], "brier": result["brier"], "ece": result["ece"],
                              "epoch": info["epoch"], "temperature": info["temperature"]})
            say(f"  fold {f + 1}/{len(folds)}: accuracy {_fmt(result['accuracy'])}, log-loss "
                f"{_fmt(result['log_loss'])} on {len(fold)} (epoch {info['epoch']}, T {info['temperature']:.2f})")
    ensemble, info, scores = _fit(template, data, cached, final_train, config, rng)
    if not cross_validate:
        fold = folds[0]
        member_diff[:, fold] = scores[:, data.pair_a[fold]] - scores[:, data.pair_b[fold]]
        raw_diff[fold] = member_diff[:, fold].mean(0) * info["temperature"]
    targets = data.targets[held]
    held_out = evaluate_pairs(_sigmoid(member_diff[:, held].mean(0)), targets, config.calibration_bins)
    held_out.update(method=method, folds=len(folds) if cross_validate else 0)
    uncalibrated = evaluate_pairs(_sigmoid(raw_diff[held]), targets, config.calibration_bins, intervals=False)
    train_diff = scores[:, data.pair_a[final_train]] - scores[:, data.pair_b[final_train]]
    in_sample = evaluate_pairs(_sigmoid(train_diff.mean(0)), data.targets[final_train], config.calibration_bins,
                               intervals=False)
    in_sample.pop("reliability", None)
    member_probabilities = _sigmoid(member_diff[:, held])
    member_accuracy = [evaluate_pairs(member_probabilities[k], targets, intervals=False)["accuracy"]
                       for k in range(config.ensemble_size)]
    raters = sorted({c.rater for c in usable} | {s.rater for s in stars})
    metrics = {
        "held_out": held_out,
        "held_out_uncalibrated": {k: uncalibrated[k] for k in ("accuracy", "log_loss", "brier", "ece")},
        "train": in_sample,
        "folds": fold_rows,
        "selection": {**info, "fold_epochs": [r["epoch"] for r in fold_rows],
                      "fold_temperatures": [r["temperature"] for r in fold_rows]},
        "member_held_out_accuracy": member_accuracy,
        "held_out_preference_variance": float(member_probabilities.var(0).mean()),
        "data": {
            "comparisons": n + skipped, "usable_comparisons": n, "skipped": skipped,
            "ties": int(np.sum(data.targets == 0.5)), "train_comparisons": int(len(final_train)),
            "held_out_comparisons": int(len(held)), "stars": len(stars), "melodies": len(data.rows),
            "raters": raters,
        },
        "prior_hash": ensemble.prior_hash,
        "seconds": time.monotonic() - started,
    }
    ensemble.metrics = metrics
    ensemble.held_out_predictions = {"comparisons": held, "probabilities": _sigmoid(member_diff[:, held].mean(0)),
                                     "uncalibrated": _sigmoid(raw_diff[held]), "targets": targets}
    low, high = held_out.get("accuracy_ci95") or (None, None)
    say(f"held-out: accuracy {_fmt(held_out['accuracy'])} (95% CI {_fmt(low)}-{_fmt(high)}), log-loss "
        f"{_fmt(held_out['log_loss'])}, Brier {_fmt(held_out['brier'])}, ECE {_fmt(held_out['ece'])} on "
        f"{held_out['pairs']} comparisons by {method} (train accuracy {_fmt(in_sample['accuracy'])}; "
        f"epoch {info['epoch']}, temperature {info['temperature']:.2f}; {metrics['seconds']:.1f}s)")
    return ensemble


def _fit(template: RewardEnsemble, data: _Data, cached: torch.Tensor | None, subset: np.ndarray,
         config: RewardModelConfig, rng: np.random.Generator
         ) -> tuple[RewardEnsemble, dict[str, Any], np.ndarray]:
    """Train the members on the comparisons ``subset`` (and every star rating).

    Returns the ensemble (centred on its training melodies, temperature set),
    what was chosen (epoch, temperature, out-of-bag log-loss) and every
    melody's member scores ``[K, M]`` (as :meth:`RewardEnsemble.member_scores`).
    """
    k_members, n = config.ensemble_size, len(subset)
    ensemble = copy.deepcopy(template)
    heads = MemberHeads(k_members, template.heads.features, config.head_hidden, config.dropout,
                        layer_norm=config.input_norm == "layer")
    ensemble.heads = heads
    encoders = list(ensemble.encoders) if ensemble.encoders is not None else []
    modules: list[nn.Module] = [heads, *encoders]
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(True)
    groups = [{"params": list(heads.parameters()), "lr": config.learning_rate}]
    if encoders:
        groups.append({"params": [p for e in encoders for p in e.parameters()], "lr": config.encoder_learning_rate})
    optimiser = torch.optim.AdamW(groups, weight_decay=config.weight_decay, foreach=True)

    bags = rng.integers(0, n, size=(k_members, n))  # each member's bootstrap, positions in subset
    oob = np.ones((k_members, n), dtype=bool)
    for k in range(k_members):
        oob[k, bags[k]] = False
    covered = oob.any(axis=0)
    oob_weight = oob[:, covered] / oob[:, covered].sum(axis=0, keepdims=True)
    a_sub, b_sub, y_sub = data.pair_a[subset], data.pair_b[subset], data.targets[subset]
    n_stars = len(data.star_index)
    star_bags = rng.integers(0, n_stars, size=(k_members, n_stars)) if n_stars else np.zeros((k_members, 0), int)
    steps = max(1, math.ceil(n / config.batch_size))
    star_batch = math.ceil(n_stars / steps) if n_stars and config.star_weight > 0 else 0
    star_z = torch.from_numpy(data.star_z).float()

    def all_scores() -> torch.Tensor:
        """Every member's raw score of every melody, ``[K, M]`` (eval mode, no gradient)."""
        for module in modules:
            module.eval()
        with torch.no_grad():
            if cached is not None:
                return heads(cached)
            return torch.cat([ensemble._member_logits(data.rows[s:s + 256])
                              for s in range(0, len(data.rows), 256)], dim=1)

    def oob_logits(scores: torch.Tensor) -> np.ndarray:
        diff = (scores[:, a_sub] - scores[:, b_sub]).numpy()[:, covered]
        return (diff * oob_weight).sum(axis=0)

    stopping = config.early_stopping and covered.sum() >= 2  # (a handful of comparisons may leave none out of bag)
    best_loss, best_epoch, best_state, best_logits = math.inf, 0, None, np.zeros(int(covered.sum()))
    epoch, total = 0, 0.0
    for epoch in range(1, config.epochs + 1):
        for module in modules:
            module.train()
        order = np.argsort(rng.random((k_members, n)), axis=1)
        star_order = np.argsort(rng.random((k_members, n_stars)), axis=1) if star_batch else None
        total = 0.0
        for step in range(steps):
            picked = np.take_along_axis(bags, order[:, step * config.batch_size:(step + 1) * config.batch_size], 1)
            if picked.shape[1] == 0:
                continue
            ia, ib = a_sub[picked], b_sub[picked]  # [K, b] melody indices
            js = (np.take_along_axis(star_bags, star_order[:, step * star_batch:(step + 1) * star_batch], 1)
                  if star_order is not None else np.zeros((k_members, 0), int))
            index = np.concatenate([ia, ib, data.star_index[js]], axis=1)  # [K, L]
            if cached is not None:
                scores = heads(cached[torch.from_numpy(index)])
            else:
                needed, inverse = np.unique(index.ravel(), return_inverse=True)
                rows = [data.rows[i] for i in needed]
                tokens, lengths = _pad(rows)
                descriptors = ensemble._descriptor_part(rows)
                stacked = torch.stack([ensemble._combine(e(tokens, lengths), descriptors) for e in encoders])
                scores = heads(stacked).gather(1, torch.from_numpy(inverse.reshape(index.shape)))
            width = ia.shape[1]
            target = torch.from_numpy(y_sub[picked]).float()
            loss = F.binary_cross_entropy_with_logits(scores[:, :width] - scores[:, width:2 * width], target,
                                                      reduction="none").mean(1).sum()
            if js.shape[1]:
                predicted = heads.star_scale.view(-1, 1) * scores[:, 2 * width:] + heads.star_offset.view(-1, 1)
                loss = loss + config.star_weight * F.mse_loss(
                    predicted, star_z[torch.from_numpy(js)], reduction="none").mean(1).sum()
            check_finite_loss(loss, "reward-model training", f"step {step + 1} of epoch {epoch}",
                              f"learning_rate={config.learning_rate:g}, encoder_learning_rate="
                              f"{config.encoder_learning_rate:g}, weight_decay={config.weight_decay:g}")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) / k_members
        if stopping or epoch == config.epochs:
            logits = oob_logits(all_scores())
            loss_oob = _log_loss(logits, y_sub[covered])
            if not stopping or loss_oob < best_loss - 1e-6:
                best_loss, best_epoch, best_logits = loss_oob, epoch, logits
                best_state = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]
            elif epoch - best_epoch >= config.patience:
                break
    if best_state is not None and stopping:
        for module, saved in zip(modules, best_state, strict=True):
            module.load_state_dict(saved)
    for parameter in ensemble.parameters():
        parameter.requires_grad_(False)
    raw = all_scores()
    ensemble.eval()
    temperature = fit_temperature(best_logits, y_sub[covered]) if config.calibrate and covered.sum() >= 5 else 1.0
    trained_on = np.unique(np.concatenate([a_sub, b_sub, data.star_index]))
    ensemble.offset.copy_(raw[:, torch.from_numpy(trained_on)].mean(1))
    ensemble.temperature.fill_(temperature)
    scores = ((raw - ensemble.offset.view(-1, 1)) / temperature).numpy().astype(np.float64)
    calibrated = _log_loss(best_logits / temperature, y_sub[covered])
    info = {"epoch": int(best_epoch), "epochs_run": int(epoch), "temperature": float(temperature),
            "oob_pairs": int(covered.sum()), "oob_log_loss": best_loss if math.isfinite(best_loss) else None,
            "oob_log_loss_calibrated": calibrated if math.isfinite(calibrated) else None,
            "final_training_loss": total / steps}
    return ensemble, info, scores


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _zscore_per_rater(stars: Sequence[StarLabel]) -> np.ndarray:
    """Stars z-scored within each rater (a rater with one value everywhere gets 0)."""
    values = np.array([float(s.stars) for s in stars], dtype=np.float64)
    result = np.zeros_like(values)
    by_rater: dict[str, list[int]] = {}
    for i, s in enumerate(stars):
        by_rater.setdefault(s.rater, []).append(i)
    for indices in by_rater.values():
        chosen = values[indices]
        std = chosen.std()
        result[indices] = (chosen - chosen.mean()) / std if std > 0 else 0.0
    return result


# ---------------------------------------------------------------- reliability
def plot_reliability(curves: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """A reliability diagram (PNG) of held-out metrics (:func:`evaluate_pairs` results, by label):
    observed share of A wins against the predicted P(A beats B), per fixed bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    width = None
    for i, (label, result) in enumerate(curves.items()):
        table = result.get("reliability")
        if not table:
            continue
        edges = np.asarray(table["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        width = (edges[1] - edges[0]) / (len(curves) + 1)
        keep = [j for j, c in enumerate(table["count"]) if c]
        ece = result.get("ece")
        top.plot([table["predicted"][j] for j in keep], [table["observed"][j] for j in keep], marker="o",
                 label=f"{label} (ECE {ece:.3f})" if ece is not None else label)
        bottom.bar(centres - (edges[1] - edges[0]) / 2 + width * (i + 1), table["count"], width=width, label=label)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed share of A wins")
    top.set_title(title or "Reliability of P(A beats B) on held-out comparisons")
    top.legend(fontsize=8, loc="upper left")
    bottom.set_xlabel("predicted P(A beats B) (fixed bins)")
    bottom.set_ylabel("comparisons")
    if width is None:
        top.text(0.5, 0.5, "no decided held-out comparisons", ha="center")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# -------------------------------------------------------------- save / load
def save_reward_model(ensemble: RewardEnsemble, out_dir: str | Path) -> Path:
    """Write ``out_dir`` (weights, config with the prior's hash, metrics) and, when the metrics hold
    held-out comparisons, their reliability plot (``reliability.png``)."""
    state = {k: v for k, v in ensemble.state_dict().items()}
    directory = save_model_dir(out_dir, KIND, ensemble.prior_config, state, ensemble.config, ensemble.metrics,
                               extra_config={"prior_hash": ensemble.prior_hash})
    held_out = ensemble.metrics.get("held_out")
    if isinstance(held_out, dict) and held_out.get("reliability"):
        plot_reliability({"reward model": held_out}, directory / RELIABILITY_PLOT,
                         f"Held-out reliability ({held_out.get('method', 'held out')}, "
                         f"{held_out.get('pairs')} comparisons)")
    return directory


def _expected_hash(expected_prior: MelodyPrior | str | Path | None) -> str | None:
    if expected_prior is None:
        return None
    if isinstance(expected_prior, MelodyPrior):
        return prior_fingerprint(expected_prior)
    spec = str(expected_prior)
    if spec == "prior" or Path(spec).is_dir():
        return prior_fingerprint(load_prior(spec))
    return spec  # a hash


def _upgrade_first_format(training: dict[str, Any], state: dict[str, torch.Tensor]
                          ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A checkpoint of the first reward model (its encoder's own embedding and GRU, a
    ``heads.k.net`` module per member, no descriptors or temperature) in today's layout,
    scoring the same."""
    training = {**config_to_dict(LEGACY_CONFIG), **training}
    upgraded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "encoder":
            upgraded[".".join(["encoder", "prior", *parts[1:]])] = value
        elif parts[0] == "encoders":
            upgraded[".".join(["encoders", parts[1], "prior", *parts[2:]])] = value
        elif parts[0] != "heads":
            upgraded[key] = value
    members = sorted({int(k.split(".")[1]) for k in state if k.startswith("heads.")})

    def stack(name: str, transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> torch.Tensor:
        return torch.stack([transform(state[f"heads.{k}.{name}"]) for k in members])

    upgraded.update({
        "heads.norm_weight": stack("net.0.weight"), "heads.norm_bias": stack("net.0.bias"),
        "heads.weight1": stack("net.1.weight", lambda t: t.t()), "heads.bias1": stack("net.1.bias"),
        "heads.weight2": stack("net.3.weight", lambda t: t[0]), "heads.bias2": stack("net.3.bias", lambda t: t[0]),
        "heads.star_scale": stack("star_scale"), "heads.star_offset": stack("star_offset"),
    })
    return training, upgraded


def load_reward_model(directory: str | Path,
                      expected_prior: MelodyPrior | str | Path | None = None) -> RewardEnsemble:
    """Load a reward-model directory; with ``expected_prior`` (a prior, a prior
    directory, ``prior`` or a hash) refuse one initialised from another prior."""
    files = read_model_dir(directory, expected_kinds=(KIND,))
    where = f"{directory}/{CONFIG_FILE}"
    training = dict(files.config.get("training", {}))
    state = files.state_dict
    first_format = "summary" not in training and any(k.startswith("heads.0.net.") for k in state)
    if first_format:
        training, state = _upgrade_first_format(training, state)
    try:
        prior_config = config_from_dict(PriorConfig, files.config["model"], where)
        config = config_from_dict(RewardModelConfig, training, where)
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    prior_hash = files.config.get("prior_hash")
    if not isinstance(prior_hash, str):
        raise CheckpointError(f"{where}: no prior_hash (the prior the reward model was initialised from)")
    expected = _expected_hash(expected_prior)
    if expected is not None and expected != prior_hash:
        raise CheckpointError(
            f"reward model '{directory}' was trained from another prior (weights {prior_hash}, "
            f"this prior is {expected}): retrain it with `rlcomposer reward train`")
    ensemble = RewardEnsemble(prior_config, config, prior_hash, files.metrics)
    if first_format:  # what it did not have: the prior's output layer (unused), identity inputs, T = 1
        state = {**{k: v for k, v in ensemble.state_dict().items() if ".prior.head." in k
                    or k in ("input_mean", "input_std", "temperature")}, **state}
    try:
        ensemble.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{directory}: weights do not match its config ({first})") from None
    for parameter in ensemble.parameters():
        parameter.requires_grad_(False)
    ensemble.eval()
    return ensemble


__all__ = [
    "KIND", "LEGACY_CONFIG", "MelodyEncoder", "PairLabel", "RatingData", "RewardEnsemble", "RewardModelConfig",
    "RewardModelError", "StarLabel", "evaluate_pairs", "fit_temperature", "load_reward_model",
    "load_training_data", "plot_reliability", "prior_fingerprint", "save_reward_model", "train_reward_model",
    "wilson_interval",
]
