"""What the reward model learns from: comparisons (:class:`PairLabel`) and star ratings
(:class:`StarLabel`) of melodies, read from the rating store by :func:`load_training_data`.

A label carries :class:`~rlcomposer.music.melody.Melody` objects, so their metre, key and
pick-up travel with the tokens to the reward model. A bare token array (the earlier form, still
accepted) is a melody of 4/4 in C major without a pick-up. A comparison is between two melodies
of one metre and one length: a pair that differs in either is refused with one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlcomposer.music.melody import Melody, MelodyError
from rlcomposer.preferences.reward_model_config import RewardModelError


def as_melody(melody: Melody | np.ndarray | Any, what: str = "melody") -> Melody:
    """A :class:`Melody` as it is; a token array as a melody of 4/4 in C major without a pick-up."""
    if isinstance(melody, Melody):
        return melody
    try:
        return Melody(np.asarray(melody))
    except MelodyError as error:
        raise RewardModelError(f"{what}: {error}") from None


def describe_shape(melody: Melody) -> str:
    """``8 bars of 6/8 (96 steps)``, ``... with a pick-up of 2 steps``: how messages name a shape."""
    bars = melody.num_bars
    count = f"{bars:g} bar{'s' if bars != 1 else ''}" if bars == int(bars) else f"{melody.num_steps} steps"
    text = f"{count} of {melody.metre.name} ({melody.num_steps} steps)"
    return text + (f" with a pick-up of {melody.pickup_steps} steps" if melody.pickup_steps else "")


def check_comparable(a: Melody, b: Melody, where: str = "a comparison") -> None:
    """Raise one line unless ``a`` and ``b`` share their metre and length (what a comparison needs)."""
    if a.metre != b.metre or a.num_steps != b.num_steps:
        raise RewardModelError(
            f"{where} is between melodies of one metre and one length: A is {describe_shape(a)}, "
            f"B is {describe_shape(b)}")


@dataclass(frozen=True)
class PairLabel:
    """One comparison: ``choice`` is ``a``, ``b``, ``tie`` or ``skip`` (about melody_a / melody_b).

    ``melody_a`` and ``melody_b`` may be given as token arrays (4/4 in C); they are kept as
    melodies. ``tokens_a`` / ``tokens_b`` are their tokens."""

    melody_a: Melody
    melody_b: Melody
    choice: str
    rater: str = "unknown"
    melody_a_id: int | None = None
    melody_b_id: int | None = None

    def __post_init__(self) -> None:
        a, b = as_melody(self.melody_a, "comparison melody A"), as_melody(self.melody_b, "comparison melody B")
        ids = "" if self.melody_a_id is None else f" (melody ids {self.melody_a_id} and {self.melody_b_id})"
        check_comparable(a, b, f"a comparison{ids}")
        object.__setattr__(self, "melody_a", a)
        object.__setattr__(self, "melody_b", b)

    @property
    def tokens_a(self) -> np.ndarray:
        return np.asarray(self.melody_a.tokens, dtype=np.int64)

    @property
    def tokens_b(self) -> np.ndarray:
        return np.asarray(self.melody_b.tokens, dtype=np.int64)


@dataclass(frozen=True)
class StarLabel:
    """One star rating (1-5) of a melody by a rater (``melody`` may be given as a token array)."""

    melody: Melody
    stars: int
    rater: str = "unknown"
    melody_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "melody", as_melody(self.melody, "rated melody"))

    @property
    def tokens(self) -> np.ndarray:
        return np.asarray(self.melody.tokens, dtype=np.int64)


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


def load_training_data(store, tag: str | None = None, rater: str | None = None,
                       study_id: int | None = None) -> RatingData:
    """Every comparison and star rating in ``store`` (melodies of ``tag``, by ``rater``, given in
    study ``study_id``, if given), each with its melodies as stored (metre, key and pick-up)."""
    tags = [tag] if tag else None
    raters = {r.id: r.name for r in store.raters()}
    if rater is not None and rater not in raters.values():
        raise RewardModelError(f"rater {rater!r} has no ratings in the database "
                               f"(raters: {', '.join(sorted(raters.values())) or 'none'})")
    comparisons = [c for c in store.comparisons(tags) if (rater is None or raters[c.rater_id] == rater)
                   and (study_id is None or c.study_id == study_id)]
    stars = [s for s in store.ratings(tags) if (rater is None or raters[s.rater_id] == rater)
             and (study_id is None or s.study_id == study_id)]
    ids = {c.melody_a_id for c in comparisons} | {c.melody_b_id for c in comparisons} | {
        s.melody_id for s in stars}
    records = store.get_melodies(ids) if ids else {}
    melodies = {i: r.melody for i, r in records.items()}
    return RatingData(
        comparisons=[PairLabel(melodies[c.melody_a_id], melodies[c.melody_b_id], c.choice, raters[c.rater_id],
                               c.melody_a_id, c.melody_b_id) for c in comparisons],
        stars=[StarLabel(melodies[s.melody_id], s.stars, raters[s.rater_id], s.melody_id) for s in stars],
        tag=tag, rater=rater)


__all__ = ["PairLabel", "RatingData", "StarLabel", "as_melody", "check_comparable", "describe_shape",
           "load_training_data"]
