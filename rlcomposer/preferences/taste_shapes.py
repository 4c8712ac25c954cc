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
