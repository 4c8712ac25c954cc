"""What the reward model learns from: comparisons (:class:`PairLabel`) and star ratings
(:class:`StarLabel`) as token arrays, read from the rating store by :func:`load_training_data`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlcomposer.preferences.reward_model_config import RewardModelError


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



__all__ = ["PairLabel", "RatingData", "StarLabel", "load_training_data"]
