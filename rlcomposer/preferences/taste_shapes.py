"""The shapes a panel member's liking of one feature takes, shared by every panel member
(:mod:`~rlcomposer.preferences.panel`'s and :mod:`~rlcomposer.preferences.metre_panel`'s).

A *band* around an ideal is satisfied ``1 / (1 + z²)``, ``z = (x - ideal) / tolerance``; a
one-sided threshold (*at least* or *at most*) by a logistic of ``±z · STEEPNESS``.
"""

from __future__ import annotations

import numpy as np

BAND, AT_LEAST, AT_MOST = 0, 1, -1
KIND_NAMES = {BAND: "band", AT_LEAST: "at least", AT_MOST: "at most"}
STEEPNESS = 4.0
"""A threshold's logistic is of (x - threshold) / (tolerance / STEEPNESS)."""


def satisfaction(values: np.ndarray, kind: np.ndarray, ideal: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """How well ``values`` meet a band (``kind`` BAND) or a threshold (AT_LEAST, AT_MOST), 0..1."""
    z = (values - ideal) / tolerance
    band = 1.0 / (1.0 + z * z)
    side = 1.0 / (1.0 + np.exp(-np.clip(STEEPNESS * kind * z, -50.0, 50.0)))
    return np.where(kind == BAND, band, side)


def share(numerator, denominator, default: float) -> np.ndarray:
    """``numerator / denominator`` element by element, ``default`` where the denominator is 0."""
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.where(denominator > 0, np.asarray(numerator, dtype=np.float64) / np.maximum(denominator, 1), default)


QUANTILE_LEVELS = np.linspace(0.0, 1.0, 51)
"""The levels at which a feature's quantiles under the prior are stored (both panels)."""


def quantile_spread(quantiles: np.ndarray, floor: float) -> float:
    """A feature's 10-90% spread from its stored ``quantiles``, at least ``floor``."""
    return max(float(np.interp(0.9, QUANTILE_LEVELS, quantiles) - np.interp(0.1, QUANTILE_LEVELS, quantiles)),
               floor)


def extended_quantile(quantiles: np.ndarray, level: float, floor: float, low: float, high: float) -> float:
    """The feature's quantile at ``level``, extended linearly beyond [0.02, 0.98] (slope: the
    10-90% spread / 0.8), clipped to the feature's bounds [``low``, ``high``]."""
    slope = quantile_spread(quantiles, floor) / 0.8
    if level < 0.02:
        value = float(np.interp(0.02, QUANTILE_LEVELS, quantiles)) - (0.02 - level) * slope
    elif level > 0.98:
        value = float(np.interp(0.98, QUANTILE_LEVELS, quantiles)) + (level - 0.98) * slope
    else:
        value = float(np.interp(level, QUANTILE_LEVELS, quantiles))
    return float(min(max(value, low), high))
