"""The style reference: what a set of melodies is compared with (the held-out corpus's feature
histograms and its distinct-pattern count per number of melodies), shipped with the package as
``rlcomposer/data/style_reference.json`` (see :mod:`rlcomposer.music.style`)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import STEPS_PER_BAR, Melody
from rlcomposer.music.style_features import (
    FEATURES,
    count_patterns,
    normalise_counts,
    pattern_count_curve,
    style_features,
    style_histograms,
)

REFERENCE_NUM_STEPS = 4 * STEPS_PER_BAR
"""Length of the reference excerpts (4 bars)."""

REFERENCE_FORMAT = "rlcomposer.style_reference"
REFERENCE_VERSION = 1


@dataclass(frozen=True)
class StyleReference:
    """What a set of melodies is compared with: histograms and a pattern-count curve."""

    histograms: dict[str, np.ndarray]
    pattern_curve: tuple[tuple[int, float], ...]
    """(number of melodies, mean distinct 4-note patterns) in increasing numbers of melodies."""
    num_steps: int = REFERENCE_NUM_STEPS
    """Length of the melodies behind the reference."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The reference set's own figures (a :meth:`StyleReport.as_dict`) and provenance."""

    def expected_patterns(self, num_melodies: int, num_steps: int | None = None) -> float:
        """Distinct patterns the reference has at ``num_melodies`` melodies (of ``num_steps``)."""
        if not self.pattern_curve:
            return math.nan
        size = num_melodies * (num_steps or self.num_steps) / self.num_steps
        sizes = np.log([s for s, _ in self.pattern_curve])
        counts = np.log([max(c, 1e-9) for _, c in self.pattern_curve])
        x = math.log(max(size, 1e-9))
        if len(sizes) == 1:
            return float(math.exp(counts[0]) * size / self.pattern_curve[0][0])
        if x <= sizes[0]:  # extrapolate along the first or last segment
            slope = (counts[1] - counts[0]) / (sizes[1] - sizes[0])
            return float(math.exp(counts[0] + slope * (x - sizes[0])))
        if x >= sizes[-1]:
            slope = (counts[-1] - counts[-2]) / (sizes[-1] - sizes[-2])
            return float(math.exp(counts[-1] + slope * (x - sizes[-1])))
        return float(math.exp(np.interp(x, sizes, counts)))

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": REFERENCE_FORMAT,
            "version": REFERENCE_VERSION,
            "num_steps": self.num_steps,
            "bins": {name: list(bounds) for name, bounds in FEATURES.items()},
            "histograms": {name: [round(float(v), 6) for v in h]
                           for name, h in self.histograms.items()},
            "pattern_curve": [[s, round(c, 2)] for s, c in self.pattern_curve],
            "summary": self.summary,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> StyleReference:
        if data.get("format") != REFERENCE_FORMAT or data.get("version") != REFERENCE_VERSION:
            raise RLComposerError(
                f"not a style reference (expected format '{REFERENCE_FORMAT}' "
                f"version {REFERENCE_VERSION})")
        bins = {name: tuple(bounds) for name, bounds in data["bins"].items()}
        if bins != FEATURES:
            raise RLComposerError(
                "the style reference was built with other feature bins: rebuild it "
                "(python experiments/build_style_reference.py)")
        histograms = {name: normalise_counts(np.asarray(data["histograms"][name], dtype=np.float64))
                      for name in FEATURES}
        curve = tuple((int(s), float(c)) for s, c in data["pattern_curve"])
        return cls(histograms, curve, int(data["num_steps"]), dict(data.get("summary", {})))

    @classmethod
    def from_melodies(
        cls,
        melodies: Sequence[Melody],
        tonic: int | Sequence[int] = 0,
        pattern_sizes: Sequence[int] | None = None,
        rng: np.random.Generator | None = None,
    ) -> StyleReference:
        """A reference made of a set of melodies (their histograms and pattern counts)."""
        melodies = list(melodies)
        if not melodies:
            raise ValueError("a style reference needs at least one melody")
        features = style_features(melodies, tonic)
        if pattern_sizes is None:
            curve: tuple[tuple[int, float], ...] = ((len(melodies),
                                                     float(count_patterns(features))),)
        else:
            curve = tuple(pattern_count_curve(melodies, pattern_sizes,
                                              rng or np.random.default_rng(0)))
        return cls(style_histograms(features), curve, melodies[0].num_steps)


DEFAULT_REFERENCE_RESOURCE = "data/style_reference.json"


def default_reference_path() -> Path:
    """Where the shipped reference lives (inside the installed package)."""
    return Path(str(resources.files("rlcomposer").joinpath(DEFAULT_REFERENCE_RESOURCE)))


@functools.lru_cache(maxsize=4)
def load_style_reference(path: str | Path | None = None) -> StyleReference:
    """The shipped reference (the corpus's test split), or one saved at ``path``."""
    path = Path(path) if path is not None else default_reference_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RLComposerError(f"no style reference at {path}") from None
    except json.JSONDecodeError as error:
        raise RLComposerError(f"the style reference {path} is corrupt: {error}") from None
    return StyleReference.from_json_dict(data)


def save_style_reference(reference: StyleReference, path: str | Path | None = None) -> Path:
    """Write ``reference`` as JSON (default: the package's shipped file)."""
    path = Path(path) if path is not None else default_reference_path()
    path.write_text(json.dumps(reference.to_json_dict(), indent=1) + "\n", encoding="utf-8")
    load_style_reference.cache_clear()
    return path


__all__ = [
    "DEFAULT_REFERENCE_RESOURCE", "REFERENCE_FORMAT", "REFERENCE_NUM_STEPS",
    "REFERENCE_VERSION", "StyleReference", "default_reference_path",
    "load_style_reference", "save_style_reference",
]
