"""Side-by-side evaluation of melody models: music metrics and likelihood under the prior."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlcomposer.checkpoints import SHIPPED_PRIOR_DIR, load_prior
from rlcomposer.melody import Melody
from rlcomposer.metrics import MusicMetrics, compute_music_metrics, format_metrics_table
from rlcomposer.model_registry import MelodyModel
from rlcomposer.prior import MelodyPrior


@dataclass
class ModelEvaluation:
    """One model's column of the evaluation table."""

    name: str
    metrics: MusicMetrics
    prior_log_likelihood_per_step: float
    """Mean log p_prior(token | history) per step under the shipped prior (nats)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metrics": self.metrics.as_dict(),
            "prior_log_likelihood_per_step": self.prior_log_likelihood_per_step,
        }


@torch.inference_mode()
def prior_log_likelihood_per_step(
    prior: MelodyPrior, melodies: Sequence[Melody], batch_size: int = 512
) -> float:
    """Mean per-step log-likelihood of equal-length melodies under ``prior``."""
    total, steps = 0.0, 0
    for first in range(0, len(melodies), batch_size):
        batch = torch.as_tensor(np.stack([m.tokens for m in melodies[first:first + batch_size]]),
                                dtype=torch.long)
        total += float(prior.log_likelihood(batch).sum())
        steps += batch.numel()
    return total / steps


def evaluate_models(
    models: Sequence[MelodyModel],
    num_melodies: int,
    num_steps: int,
    rng: np.random.Generator,
    prior: MelodyPrior | None = None,
) -> list[ModelEvaluation]:
    """Sample ``num_melodies`` from each model and measure them all the same way."""
    prior = prior if prior is not None else load_prior(SHIPPED_PRIOR_DIR)
    results = []
    for model in models:
        melodies = model.sample(num_melodies, num_steps, rng)
        results.append(ModelEvaluation(
            model.name,
            compute_music_metrics(melodies),
            prior_log_likelihood_per_step(prior, melodies),
        ))
    return results


def format_evaluation(results: Sequence[ModelEvaluation]) -> str:
    """The metrics table with a last row for the prior's log-likelihood per step."""
    return format_metrics_table(
        {r.name: r.metrics for r in results},
        extra_rows={"Prior log-likelihood / step": [f"{r.prior_log_likelihood_per_step:.3f}"
                                                    for r in results]},
    )
