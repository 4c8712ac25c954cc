"""The error of simulated listeners (built-in tastes, the panel, loaded functions)."""

from __future__ import annotations

from rlcomposer.errors import RLComposerError


class ListenerError(RLComposerError):
    """A listener that cannot be loaded, is used uncalibrated, or fails on a melody."""


__all__ = ["ListenerError"]
