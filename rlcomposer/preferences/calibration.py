"""How well predicted P(A beats B) fit listeners' answers, and the temperature that calibrates them.

:func:`evaluate_pairs` (accuracy with a Wilson interval, log-loss, Brier score, ECE and a
reliability table), :func:`fit_temperature` (temperature scaling), :func:`plot_reliability`
(the reliability diagram) and the two small functions they share, :func:`sigmoid` and
:func:`log_loss`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.confidence_intervals import wilson_interval


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, clipped so that large logits do not overflow."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


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


def log_loss(logits: np.ndarray, targets: np.ndarray) -> float:
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


__all__ = ["evaluate_pairs", "fit_temperature", "log_loss", "plot_reliability", "sigmoid"]
