"""Which melody or pair a rater gets next.

A :class:`SelectionStrategy` looks at the pool and at what the rater has already
judged (through the store) and proposes the next :class:`Item`. A rater never
gets an item twice, except for deliberate repeats that measure self-consistency
(a small, configurable share, marked ``is_repeat``). A melody of the rater's last
:data:`RECENT_ITEMS` items (answered, or on their way) is not proposed again while
the pool has other fitting melodies (deliberate repeats aside): the same melody in
two pairs in a row would be heard twice and judged against itself. :class:`RandomSelection` is
one strategy this module ships; :class:`ActiveSelection` (where a reward ensemble
disagrees most; with a personal reward model, where the model is least sure of the
asking rater's own taste) implements the same protocol.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.store import FeedbackStore

ItemKind = Literal["single", "pair"]
RECENT_ITEMS = 3
"""A melody of the rater's last this-many items is avoided in the next one."""


@dataclass(frozen=True)
class Item:
    """What a rater is shown: one melody (stars) or a pair (A/B).

    For a pair, ``melody_ids`` is ``(a, b)`` in the strategy's order; the app
    decides at random which side each is shown on and records it.
    """

    kind: ItemKind
    melody_ids: tuple[int, ...]
    is_repeat: bool = False

    def __post_init__(self) -> None:
        expected = 1 if self.kind == "single" else 2
        if self.kind not in ("single", "pair") or len(self.melody_ids) != expected:
            raise RLComposerError(f"item {self.kind!r} needs {expected} melody ids, got {self.melody_ids}")
        if self.kind == "pair" and self.melody_ids[0] == self.melody_ids[1]:
            raise RLComposerError(f"a pair needs two different melodies, got {self.melody_ids}")

    @property
    def key(self) -> tuple:
        """Identity of the item regardless of the pair's order."""
        return (self.kind, tuple(sorted(self.melody_ids)))


@runtime_checkable
class SelectionStrategy(Protocol):
    """Chooses the next item for a rater."""

    def next_item(self, store: FeedbackStore, rater_id: int, kind: ItemKind,
                  exclude: Collection[Item] = ()) -> Item | None:
        """The next item of ``kind`` for ``rater_id``, or None when the rater has
        judged everything. ``exclude``: items already on their way to the rater
        (the one on screen, the one prepared next), never proposed again."""
        ...


@dataclass(frozen=True)
class _Candidates:
    """What every strategy starts from: the pool, what the rater has judged, what is on its way."""

    pool: list[int]
    """Ids of the pool's melodies (of the strategy's tags), oldest first."""
    seen: set
    """Melody ids the rater has rated (``single``) or unordered pairs compared (``pair``)."""
    excluded: set[tuple]
    """Keys (:attr:`Item.key`) of the items already on their way to the rater."""
    shapes: dict[int, tuple[str, int]] = field(default_factory=dict)
    """``(metre, steps)`` of each pool melody (pairs only): a pair is always of one shape."""
    recent: set[int] = field(default_factory=set)
    """Melodies of the rater's last :data:`RECENT_ITEMS` items and of the items on their way."""

    def same_shape(self, a: int, b: int) -> bool:
        return self.shapes.get(a) == self.shapes.get(b)

    def fresh_singles(self) -> list[int]:
        """Pool melodies the rater has not rated and has not on the way, in pool order
        (the recent ones left out, unless nothing else is left)."""
        fresh = [m for m in self.pool if m not in self.seen and ("single", (m,)) not in self.excluded]
        return [m for m in fresh if m not in self.recent] or fresh


def _candidates(store: FeedbackStore, rater_id: int, kind: ItemKind, exclude: Collection[Item],
                tags: Sequence[str]) -> _Candidates:
    """Check ``kind`` and read the pool and the rater's history of that kind."""
    if kind not in ("single", "pair"):
        raise RLComposerError(f"item kind {kind!r} must be single or pair")
    excluded = {item.key for item in exclude}
    pool = store.melody_ids(list(tags) or None)  # the whole pool leaves out private tags
    seen = store.rated_melody_ids(rater_id) if kind == "single" else store.compared_pairs(rater_id)
    shapes = store.melody_shapes(list(tags) or None) if kind == "pair" else {}
    recent = {m for item in exclude for m in item.melody_ids}
    recent.update(m for ids in store.recent_items(rater_id, RECENT_ITEMS) for m in ids)
    return _Candidates(pool, seen, excluded, shapes, recent)


def _first_found(find, recent: set[int]):
    """``find(avoid)`` with the recent melodies avoided, else (a small pool) without."""
    return (find(recent) if recent else None) or find(set())


@dataclass
class RandomSelection:
    """Uniformly random among the items the rater has not judged yet.

    With probability ``repeat_share`` (when the rater has judged at least
    ``min_history_for_repeat`` items of that kind) it proposes one of the rater's
    earlier items again, marked ``is_repeat``.
    """

    repeat_share: float = 0.05
    """Share of deliberate repeats, for measuring each rater's self-consistency (0 disables)."""
    tags: tuple[str, ...] = ()
    """Only melodies with these tags (empty: the whole pool)."""
    min_history_for_repeat: int = 5
    """Repeats start once the rater has judged this many items of the kind."""
    seed: int | None = None
    """Fixes the choices (None: fresh randomness)."""
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.repeat_share <= 0.5:
            raise RLComposerError(f"repeat share {self.repeat_share} must be between 0 and 0.5")
        self.rng = random.Random(self.seed)

    def next_item(self, store: FeedbackStore, rater_id: int, kind: ItemKind,
                  exclude: Collection[Item] = ()) -> Item | None:
        start = _candidates(store, rater_id, kind, exclude, self.tags)
        history: Sequence[tuple[int, ...]] = (
            sorted((m,) for m in start.seen) if kind == "single"
            else sorted(tuple(sorted(p)) for p in start.seen))
        if (self.repeat_share > 0 and len(history) >= self.min_history_for_repeat
                and self.rng.random() < self.repeat_share):
            candidates = [h for h in history if (kind, h) not in start.excluded]
            if candidates:
                ids = list(self.rng.choice(candidates))
                self.rng.shuffle(ids)
                return Item(kind, tuple(ids), is_repeat=True)
        if kind == "single":
            fresh = start.fresh_singles()
            return Item("single", (self.rng.choice(fresh),)) if fresh else None
        return _first_found(lambda avoid: self._fresh_pair(start.pool, start.seen, start.excluded,
                                                           start.same_shape, avoid), start.recent)

    def _fresh_pair(self, pool: list[int], seen: set[frozenset[int]], excluded: set[tuple],
                    same_shape=lambda a, b: True, avoid: Collection[int] = ()) -> Item | None:
        pool = [m for m in pool if m not in avoid]
        if len(pool) < 2:
            return None

        def usable(a: int, b: int) -> bool:
            return (a != b and frozenset((a, b)) not in seen and ("pair", tuple(sorted((a, b)))) not in excluded
                    and same_shape(a, b))

        for _ in range(64):  # a sparse history: random draws find a fresh pair at once
            a, b = self.rng.sample(pool, 2)
            if usable(a, b):
                return Item("pair", (a, b))
        fresh = [(a, b) for i, a in enumerate(pool) for b in pool[i + 1:] if usable(a, b)]
        if not fresh:
            return None
        a, b = self.rng.choice(fresh)
        return Item("pair", (a, b) if self.rng.random() < 0.5 else (b, a))


@dataclass
class ActiveSelection:
    """Active learning: the pair where the reward ensemble disagrees most.

    Draws ``candidate_pairs`` pairs of pool melodies that the rater has not
    compared (nor has on the way, ``exclude``) and proposes the one with the
    largest variance across the ensemble's members of P(A beats B). For stars
    (``kind="single"``) it proposes the unrated melody whose member scores vary
    most. Member scores are cached per melody id, so the pool is scored once.

    With a personal reward model (``reward train --per-rater``) each rater's next
    pair is chosen by that rater's own uncertainty: the variance of P(A beats B)
    across joint samples of the rater's reward, each population member with draws
    of the rater's weights from their Laplace posterior (the member's score plus the
    rater's personal correction;
    :func:`~rlcomposer.preferences.personal_uncertainty.rater_member_scores`). The
    rater is found by name through the store. A rater the model does not know (who
    joined after it was trained) or fitted without answers gets the population's
    uncertainty, and :attr:`note` (and ``log``) say so. Scores are cached per rater
    and melody.
    """

    reward: Any
    """A :class:`~rlcomposer.preferences.reward_model.RewardEnsemble` (anything with ``member_scores``),
    or a :class:`~rlcomposer.preferences.personal_reward.PersonalRewardModel` (per-rater uncertainty)."""
    candidate_pairs: int = 256
    """Random unseen pairs scored for each choice."""
    rng: Any = None
    """A ``numpy.random.Generator``, a seed, or None (fresh randomness)."""
    tags: tuple[str, ...] = ()
    """Only melodies with these tags (empty: the whole pool)."""
    log: Callable[[str], None] | None = None
    """Told (once per rater) when a rater's pairs fall back to the population's uncertainty."""
    note: str = field(default="", init=False)
    """The last such fallback, in words (empty while every rater has their own uncertainty)."""
    _scores: dict[str | None, dict[int, Any]] = field(default_factory=dict, init=False, repr=False)
    _raters: dict[int, str | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        import numpy as np

        if not hasattr(self.reward, "member_scores"):
            raise RLComposerError("active selection needs a reward ensemble (a reward-model directory)")
        if self.candidate_pairs < 1:
            raise RLComposerError(f"candidate_pairs {self.candidate_pairs} must be at least 1")
        if not isinstance(self.rng, np.random.Generator):
            self.rng = np.random.default_rng(self.rng)

    @property
    def per_rater(self) -> bool:
        """Is each rater's pair chosen by their own uncertainty (a personal reward model)?"""
        return hasattr(self.reward, "rater_index") and hasattr(self.reward, "raters")

    def _rater(self, store: FeedbackStore, rater_id: int) -> str | None:
        """The personal model's rater whose uncertainty chooses ``rater_id``'s items (None: the population's)."""
        if not self.per_rater:
            return None
        if rater_id not in self._raters:
            from rlcomposer.preferences.personal_uncertainty import uncertainty_rater

            rater, note = uncertainty_rater(self.reward, store.get_rater(rater_id).name)
            self._raters[rater_id] = rater
            if note:
                self.note = note
                if self.log is not None:
                    self.log(note)
        return self._raters[rater_id]

    def _member_scores(self, store: FeedbackStore, ids: Sequence[int], rater: str | None = None):
        import numpy as np

        cache = self._scores.setdefault(rater, {})
        missing = sorted({i for i in ids if i not in cache})
        for start in range(0, len(missing), 512):
            chunk = missing[start:start + 512]
            records = store.get_melodies(chunk)
            melodies = [records[i].melody for i in chunk]
            scores = (self.reward.member_scores(melodies) if rater is None
                      else self.reward.member_scores(melodies, rater))
            for column, melody_id in enumerate(chunk):
                cache[melody_id] = scores[:, column]
        return np.stack([cache[i] for i in ids], axis=1)  # [K, len(ids)]

    def next_item(self, store: FeedbackStore, rater_id: int, kind: ItemKind,
                  exclude: Collection[Item] = ()) -> Item | None:
        import numpy as np

        start = _candidates(store, rater_id, kind, exclude, self.tags)
        pool = start.pool
        rater = self._rater(store, rater_id)
        if kind == "single":
            fresh = start.fresh_singles()
            if not fresh:
                return None
            if len(fresh) > self.candidate_pairs:
                fresh = [int(m) for m in self.rng.choice(fresh, self.candidate_pairs, replace=False)]
            spread = self._member_scores(store, fresh, rater).var(axis=0)
            return Item("single", (fresh[int(np.argmax(spread))],))
        return _first_found(lambda avoid: self._pair(store, [m for m in pool if m not in avoid], start, rater),
                            start.recent)

    def _pair(self, store: FeedbackStore, pool: list[int], start: _Candidates,
              rater: str | None = None) -> Item | None:
        import numpy as np

        excluded = start.excluded
        if len(pool) < 2:
            return None
        seen_pairs = start.seen

        def usable(a: int, b: int) -> bool:
            return a != b and frozenset((a, b)) not in seen_pairs and \
                ("pair", tuple(sorted((a, b)))) not in excluded and start.same_shape(a, b)

        candidates: set[tuple[int, int]] = set()
        pool_array = np.asarray(pool)
        for _ in range(4):  # a sparse history: random draws find fresh pairs at once
            draws = self.rng.integers(0, len(pool), size=(2 * self.candidate_pairs, 2))
            for i, j in draws.tolist():
                a, b = int(pool_array[i]), int(pool_array[j])
                if usable(a, b):
                    candidates.add((a, b))
                    if len(candidates) >= self.candidate_pairs:
                        break
            if len(candidates) >= self.candidate_pairs:
                break
        if not candidates:  # nearly everything compared: list what is left
            candidates = {(a, b) for i, a in enumerate(pool) for b in pool[i + 1:] if usable(a, b)}
            if not candidates:
                return None
            if len(candidates) > self.candidate_pairs:
                listed = sorted(candidates)
                picks = self.rng.choice(len(listed), self.candidate_pairs, replace=False)
                candidates = {listed[int(p)] for p in picks}
        pairs = sorted(candidates)
        a_ids = [a for a, _ in pairs]
        b_ids = [b for _, b in pairs]
        scores = self._member_scores(store, sorted(set(a_ids) | set(b_ids)), rater)
        column = {m: c for c, m in enumerate(sorted(set(a_ids) | set(b_ids)))}
        diff = scores[:, [column[a] for a in a_ids]] - scores[:, [column[b] for b in b_ids]]
        variance = (1.0 / (1.0 + np.exp(-np.clip(diff, -50, 50)))).var(axis=0)
        a, b = pairs[int(np.argmax(variance))]
        return Item("pair", (a, b) if self.rng.random() < 0.5 else (b, a))


@dataclass
class CrossTagSelection(RandomSelection):
    """Pairs across two tags: one melody of ``tags[0]`` and one of ``tags[1]``.

    For comparing two pools head to head, e.g. an experiment's tuned policy
    (``NAME/round-K``) against the prior (``NAME/round-0``): every pair has one
    melody of each tag (in random order), never two of the same tag. Stars
    (``kind="single"``) and deliberate repeats draw from both tags, as
    :class:`RandomSelection` does.
    """

    _sides: tuple[list[int], list[int]] = field(default=([], []), init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tags = tuple(self.tags)
        if len(self.tags) != 2 or self.tags[0] == self.tags[1]:
            raise RLComposerError(f"pairs across tags need exactly two different tags, got {list(self.tags)}")

    def next_item(self, store: FeedbackStore, rater_id: int, kind: ItemKind,
                  exclude: Collection[Item] = ()) -> Item | None:
        if kind == "pair":
            self._sides = (store.melody_ids([self.tags[0]]), store.melody_ids([self.tags[1]]))
        return super().next_item(store, rater_id, kind, exclude)

    def _fresh_pair(self, pool: list[int], seen: set[frozenset[int]], excluded: set[tuple],
                    same_shape=lambda a, b: True, avoid: Collection[int] = ()) -> Item | None:
        first, second = ([m for m in side if m not in avoid] for side in self._sides)
        if not first or not second:
            return None

        def usable(a: int, b: int) -> bool:
            return (a != b and frozenset((a, b)) not in seen and ("pair", tuple(sorted((a, b)))) not in excluded
                    and same_shape(a, b))

        def ordered(a: int, b: int) -> Item:
            return Item("pair", (a, b) if self.rng.random() < 0.5 else (b, a))

        for _ in range(64):  # a sparse history: random draws find a fresh pair at once
            a, b = self.rng.choice(first), self.rng.choice(second)
            if usable(a, b):
                return ordered(a, b)
        fresh = [(a, b) for a in first for b in second if usable(a, b)]
        return ordered(*self.rng.choice(fresh)) if fresh else None
