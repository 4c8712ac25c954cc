"""The folk-tune corpus as built: what goes into it, its split by tune, its counts and arrays.

Owns the corpus once built: what goes into it (:class:`CorpusConfig`), the
split of its tunes (:data:`SPLITS`, :func:`split_of`), the counts of a build
(:class:`CorpusStats`) and the :class:`Corpus` arrays with their readers
(sequences, melodies, pick-ups, paddings, metres, modes). Parsing every tune and
the cache on disk are :mod:`rlcomposer.corpus.build`'s (which imports this
module, never the reverse).

Tunes are split into train / validation / test by a hash of
``collection/file/tune-index`` (the tune's position among the ``X:`` headers
of its file), so the split is deterministic, disjoint by tune, and stable when
other tunes are added or skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.corpus.abc import COLLECTIONS, CorpusError
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.metre import parse_metre
from rlcomposer.validation import FRACTION, Range, between, check_config

SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------- splits
def split_of(key: str, validation_fraction: float, test_fraction: float) -> int:
    """The split id (index into :data:`SPLITS`) of a tune, from a hash of its key."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_fraction:
        return SPLITS.index("test")
    if u < test_fraction + validation_fraction:
        return SPLITS.index("validation")
    return SPLITS.index("train")


# --------------------------------------------------------------------- config
@dataclass(frozen=True)
class CorpusConfig:
    """What goes into a corpus. Every field but ``workers`` names the cache file."""

    collections: tuple[str, ...] = COLLECTIONS
    """Which music21 collections to read, a subset of :data:`COLLECTIONS`."""

    validation_fraction: float = 0.05
    """Share of tunes (by tune, not by step) in the validation split."""

    test_fraction: float = 0.05
    """Share of tunes in the test split; the rest is train."""

    workers: int = 2
    """Parser processes (1 parses in this process). Does not change the result."""

    max_tunes_per_collection: int | None = None
    """Parse only the first N tunes of each collection (in file order), for tests."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "collections", tuple(self.collections))
        unknown = [c for c in self.collections if c not in COLLECTIONS]
        if unknown or not self.collections:
            raise CorpusError(
                f"unknown collection(s) {unknown or '(none given)'}; choose from {list(COLLECTIONS)}"
            )
        if len(set(self.collections)) != len(self.collections):
            raise CorpusError(f"collections listed twice: {list(self.collections)}")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise CorpusError(f"{name} must be in [0, 1), got {value}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise CorpusError("validation_fraction + test_fraction must be below 1")
        if self.workers < 1:
            raise CorpusError(f"workers must be at least 1, got {self.workers}")
        if self.max_tunes_per_collection is not None and self.max_tunes_per_collection < 1:
            raise CorpusError(
                f"max_tunes_per_collection must be positive, got {self.max_tunes_per_collection}"
            )
        check_config(self, {"validation_fraction": FRACTION, "test_fraction": FRACTION, "workers": between(
            1, 256, whole=True), "max_tunes_per_collection": Range(1, whole=True, optional=True)})

    def content_dict(self) -> dict[str, Any]:
        """The fields that determine the corpus content (all but ``workers``)."""
        return {
            "collections": list(self.collections),
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "max_tunes_per_collection": self.max_tunes_per_collection,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "collections": list(self.collections)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "collections" in known:
            known["collections"] = tuple(known["collections"])
        return cls(**known)



# ---------------------------------------------------------------------- stats
@dataclass
class CorpusStats:
    """Counts of a build (``parsed == kept + sum(skipped_by_reason.values())``)."""

    parsed: int = 0
    """Tunes read (each ``X:`` header is one tune), kept or not."""

    kept: int = 0
    """Tunes in the corpus."""

    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    """Tunes not kept, by reason (see :data:`~rlcomposer.corpus.abc.SKIP_REASONS`)."""

    per_collection: dict[str, dict[str, Any]] = field(default_factory=dict)
    """For each collection: ``available``, ``parsed``, ``kept``, ``skipped_by_reason``."""

    tunes_per_split: dict[str, int] = field(default_factory=dict)
    steps_per_split: dict[str, int] = field(default_factory=dict)

    build_seconds: float = 0.0
    """Wall time of the cold build that wrote the cache."""

    load_seconds: float = 0.0
    """Wall time to read the cache (0 for a fresh build)."""

    from_cache: bool = False
    """True when this corpus was read from an existing cache."""

    music21_version: str = ""

    kept_by_metre: dict[str, int] = field(default_factory=dict)
    """Kept tunes per time signature."""

    kept_by_mode: dict[str, int] = field(default_factory=dict)
    """Kept tunes per mode (read from each tune's ``K:`` field)."""

    quantised_tuplet_tunes: int = 0
    """Kept tunes with at least one tuplet note moved to the sixteenth grid."""

    quantised_tuplet_notes: int = 0
    """Tuplet notes moved to the grid, over all kept tunes."""

    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    """Up to three skipped tunes per reason, as ``collection/file/index: message``."""

    slowest_tunes: dict[str, float] = field(default_factory=dict)
    """The five slowest tunes to parse (seconds), to find pathological ones."""

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusStats:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# --------------------------------------------------------------------- corpus
class Corpus:
    """Kept tunes as one concatenated token array with offsets, split ids and names.

    ``tokens[offsets[i]:offsets[i + 1]]`` are the cached tokens of tune ``i``: a whole
    number of bars of its metre (``index[i]["metre"]``), its tonic on C in its mode
    (``index[i]["mode"]``), a pick-up's bar filled with ``index[i]["pickup_padding"]``
    steps of leading silence. :meth:`sequences` and :meth:`melodies` give the tunes
    from their first note, the pick-up a partial bar. ``split_ids[i]`` indexes :data:`SPLITS`.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        offsets: np.ndarray,
        split_ids: np.ndarray,
        index: list[dict[str, Any]],
        stats: CorpusStats,
        config: CorpusConfig,
        path: Path | None = None,
    ):
        self.tokens = tokens
        self.offsets = offsets
        self.split_ids = split_ids
        self.index = index
        self.stats = stats
        self.config = config
        self.path = path

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.num_tunes(s)}" for s in SPLITS)
        return f"Corpus({len(self)} tunes: {counts})"

    def _ids(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise CorpusError(f"unknown split {split!r}; choose from {list(SPLITS)}")
        return np.flatnonzero(self.split_ids == SPLITS.index(split))

    def _pickup_padding(self, i: int) -> int:
        """Steps of silence the cache holds before tune ``i``'s pick-up (its bar made whole)."""
        return int(self.index[i].get("pickup_padding", 0) or 0)

    def _pickup_steps(self, i: int) -> int:
        bar = parse_metre(self.index[i].get("metre", "4/4")).steps_per_bar
        return (bar - self._pickup_padding(i)) % bar

    def sequences(self, split: str, padded: bool = False) -> list[np.ndarray]:
        """The token arrays (``int64``) of the tunes in ``split``, in corpus order, each from its
        first note: a pick-up is a partial bar (:meth:`pickups`). ``padded`` gives the cache's
        form instead, the pick-up's bar filled with leading silence (the earlier encoding)."""
        return [
            self.tokens[self.offsets[i] + (0 if padded else self._pickup_padding(i)): self.offsets[i + 1]]
            .astype(np.int64)
            for i in self._ids(split)
        ]

    def paddings(self, split: str) -> list[int]:
        """Each tune's steps of leading silence in the cache's padded form, in corpus order."""
        return [self._pickup_padding(i) for i in self._ids(split)]

    def pickups(self, split: str) -> list[int]:
        """Each tune's pick-up in steps (0: it starts on the downbeat), in corpus order."""
        return [self._pickup_steps(i) for i in self._ids(split)]

    def melodies(self, split: str) -> list[Melody]:
        """The tunes of ``split`` as melodies in their metre and mode (tonic C) with their
        pick-ups, with title/collection/source metadata."""
        return [
            Melody(
                self.tokens[self.offsets[i] + self._pickup_padding(i): self.offsets[i + 1]],
                {**self.index[i], "split": split},
                parse_metre(self.index[i].get("metre", "4/4")),
                Key("C", self.index[i].get("mode", "major")),
                self._pickup_steps(i),
            )
            for i in self._ids(split)
        ]

    def metres(self, split: str) -> list[str]:
        """The time signature of each tune of ``split``, in corpus order."""
        return [str(self.index[i].get("metre", "4/4")) for i in self._ids(split)]

    def modes(self, split: str) -> list[str]:
        """The mode of each tune of ``split``, in corpus order."""
        return [str(self.index[i].get("mode", "major")) for i in self._ids(split)]

    def num_tunes(self, split: str) -> int:
        return int(self._ids(split).size)

    def num_steps(self, split: str) -> int:
        """Steps of the tunes of ``split`` from their first notes (no padding)."""
        ids = self._ids(split)
        return int(np.sum(self.offsets[ids + 1] - self.offsets[ids])) - sum(self.paddings(split))
