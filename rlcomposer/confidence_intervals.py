"""Confidence intervals of a proportion, shared by the reward model's held-out accuracy and the
organiser's win-rates (they import only the standard library)."""

from __future__ import annotations

import math

Z_95 = 1.959964
"""The standard normal quantile of 0.975: a two-sided 95% interval."""


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (95% by default; ``successes``
    may hold halves, for ties); ``(0, 1)`` when there is nothing to count."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


__all__ = ["Z_95", "wilson_interval"]
