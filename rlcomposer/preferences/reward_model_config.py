"""How a reward model is trained: :class:`RewardModelConfig` (stored with every reward-model
checkpoint), :data:`LEGACY_CONFIG` (the first reward model's settings, kept to compare against)
and :class:`RewardModelError`."""

from __future__ import annotations

from dataclasses import dataclass

from rlcomposer.errors import RLComposerError
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

SUMMARIES = ("mean", "max", "last", "tokens")
"""What :class:`MelodyEncoder` can read off the GRU: its states' mean, max and
last value, and the token embeddings' mean, max and min (``tokens``)."""
INPUT_NORMS = ("reference", "layer")


class RewardModelError(RLComposerError):
    """Training data or a setting the reward model cannot work with."""



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
        if self.cv_folds == 1:
            raise RewardModelError(f"cv_folds {self.cv_folds} must be 0 (a hold-out split) or 2-20")
        unknown = [s for s in self.summary if s not in SUMMARIES]
        if unknown or len(set(self.summary)) != len(self.summary):
            raise RewardModelError(f"summary {','.join(self.summary)} must be distinct names of {', '.join(SUMMARIES)}")
        if not self.summary and not self.descriptors:
            raise RewardModelError("the heads need an input: give a GRU summary or descriptors (or both)")
        if self.summary_components and not self.summary:
            raise RewardModelError(f"summary_components {self.summary_components} must be 0, or positive with a summary")
        if self.summary_components > self.reference_melodies:
            raise RewardModelError("summary_components must not exceed reference_melodies")
        if self.input_norm not in INPUT_NORMS:
            raise RewardModelError(f"input_norm {self.input_norm!r} must be one of {', '.join(INPUT_NORMS)}")

    @property
    def needs_reference(self) -> bool:
        """Are inputs standardised (or projected) on sampled prior melodies?"""
        return self.input_norm == "reference" or self.descriptors or self.summary_components > 0


LEGACY_CONFIG = RewardModelConfig(
    ensemble_size=3, epochs=60, learning_rate=3e-3, early_stopping=False, calibrate=False, cv_folds=0, weight_decay=1e-3,
    dropout=0.0, summary=("mean", "max", "last", "tokens"), descriptors=False, input_norm="layer",
    head_hidden=64)
"""The first reward model's settings (before early stopping, calibration, descriptors and k-fold)."""



__all__ = ["INPUT_NORMS", "LEGACY_CONFIG", "SUMMARIES", "RewardModelConfig", "RewardModelError"]
