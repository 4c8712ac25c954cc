"""The style reference: what a set of melodies is compared with (the held-out corpus's feature
histograms and its distinct-pattern count per number of melodies), one per metre family
(``duple``, ``triple``, ``compound``: :data:`~rlcomposer.music.metre.FAMILIES`), shipped with the
package as ``rlcomposer/data/style_reference.json`` (see :mod:`rlcomposer.music.style`).

Each family's reference is built from 4-bar excerpts of the corpus test split's major tunes in
the family's most common metre (:data:`FAMILY_METRES`: 4/4, 3/4, 6/8), with
``python experiments/build_style_reference.py``. The file (format version 2) holds the families
side by side; a version-1 file (one reference, 4/4) is read as the duple family alone."""

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
from rlcomposer.music.metre import FAMILIES, parse_metre
from rlcomposer.music.style_features import (
    FEATURES,
    count_patterns,
    normalise_counts,
    pattern_count_curve,
    style_features,
    style_histograms,
)

REFERENCE_NUM_STEPS = 4 * STEPS_PER_BAR
"""Length of the duple reference excerpts (4 bars of 4/4)."""

FAMILY_METRES = {"duple": "4/4", "triple": "3/4", "compound": "6/8"}
"""The metre whose tunes make each family's reference."""

REFERENCE_FORMAT = "rlcomposer.style_reference"
REFERENCE_VERSION = 2
"""2: one reference per metre family; 1 (still read): one reference, of 4/4."""


def family_num_steps(family: str) -> int:
    """Length of a family's reference excerpts: 4 bars of its metre (:data:`FAMILY_METRES`)."""
    return 4 * parse_metre(FAMILY_METRES[family]).steps_per_bar


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
    family: str = "duple"
    """The metre family of the melodies behind the reference."""

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

    def family_json_dict(self) -> dict[str, Any]:
        """This family's entry of the file."""
        return {
            "num_steps": self.num_steps,
            "histograms": {name: [round(float(v), 6) for v in h]
                           for name, h in self.histograms.items()},
            "pattern_curve": [[s, round(c, 2)] for s, c in self.pattern_curve],
            "summary": self.summary,
        }

    def to_json_dict(self) -> dict[str, Any]:
        """A file holding this one family (see :func:`references_to_json_dict` for several)."""
        return references_to_json_dict({self.family: self})

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any], family: str = "duple") -> StyleReference:
        """``family``'s reference in a file's contents (a version-1 file holds the duple family only)."""
        if data.get("format") != REFERENCE_FORMAT or data.get("version") not in (1, REFERENCE_VERSION):
            raise RLComposerError(
                f"not a style reference (expected format '{REFERENCE_FORMAT}' "
                f"version {REFERENCE_VERSION})")
        if family not in FAMILIES:
            raise RLComposerError(f"unknown metre family {family!r}: one of {', '.join(FAMILIES)}")
        bins = {name: tuple(bounds) for name, bounds in data["bins"].items()}
        if bins != FEATURES:
            raise RLComposerError(
                "the style reference was built with other feature bins: rebuild it "
                "(python experiments/build_style_reference.py)")
        if data.get("version") == 1:
            if family != "duple":
                raise RLComposerError(
                    f"the style reference was built before one per metre family and has no {family} "
                    "family: rebuild it (python experiments/build_style_reference.py)")
            entry = data
        else:
            entry = data.get("families", {}).get(family)
            if entry is None:
                raise RLComposerError(f"the style reference has no {family} family: rebuild it "
                                      "(python experiments/build_style_reference.py)")
        histograms = {name: normalise_counts(np.asarray(entry["histograms"][name], dtype=np.float64))
                      for name in FEATURES}
        curve = tuple((int(s), float(c)) for s, c in entry["pattern_curve"])
        return cls(histograms, curve, int(entry["num_steps"]), dict(entry.get("summary", {})), family)

    @classmethod
    def from_melodies(
        cls,
        melodies: Sequence[Melody],
        tonic: int | Sequence[int] | None = None,
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
        return cls(style_histograms(features), curve, melodies[0].num_steps, family=melodies[0].metre.family)


def references_to_json_dict(references: Mapping[str, StyleReference]) -> dict[str, Any]:
    """The file's contents for references of several families (by family name)."""
    unknown = [f for f in references if f not in FAMILIES]
    if unknown:
        raise RLComposerError(f"unknown metre family {unknown[0]!r}: one of {', '.join(FAMILIES)}")
    return {
        "format": REFERENCE_FORMAT,
        "version": REFERENCE_VERSION,
        "bins": {name: list(bounds) for name, bounds in FEATURES.items()},
        "families": {family: references[family].family_json_dict() for family in FAMILIES if family in references},
    }


DEFAULT_REFERENCE_RESOURCE = "data/style_reference.json"


def default_reference_path() -> Path:
    """Where the shipped reference lives (inside the installed package)."""
    return Path(str(resources.files("rlcomposer").joinpath(DEFAULT_REFERENCE_RESOURCE)))


@functools.lru_cache(maxsize=12)
def load_style_reference(path: str | Path | None = None, family: str = "duple") -> StyleReference:
    """``family``'s reference in the shipped file (the corpus's test split), or in one saved at ``path``."""
    path = Path(path) if path is not None else default_reference_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RLComposerError(f"no style reference at {path}") from None
    except json.JSONDecodeError as error:
        raise RLComposerError(f"the style reference {path} is corrupt: {error}") from None
    return StyleReference.from_json_dict(data, family)


def save_style_reference(reference: StyleReference | Mapping[str, StyleReference],
                         path: str | Path | None = None) -> Path:
    """Write a reference, or references by family, as JSON (default: the package's shipped file).

    One reference replaces its family's entry in an existing file of version 2 and keeps the others."""
    path = Path(path) if path is not None else default_reference_path()
    if isinstance(reference, StyleReference):
        references: dict[str, StyleReference] = {}
        if path.is_file():
            try:
                existing = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                existing = {}
            if existing.get("format") == REFERENCE_FORMAT and existing.get("version") == REFERENCE_VERSION:
                for family in existing.get("families", {}):
                    if family in FAMILIES:
                        references[family] = StyleReference.from_json_dict(existing, family)
        references[reference.family] = reference
    else:
        references = dict(reference)
    path.write_text(json.dumps(references_to_json_dict(references), indent=1) + "\n", encoding="utf-8")
    load_style_reference.cache_clear()
    return path


__all__ = [
    "DEFAULT_REFERENCE_RESOURCE", "FAMILY_METRES", "REFERENCE_FORMAT", "REFERENCE_NUM_STEPS",
    "REFERENCE_VERSION", "StyleReference", "default_reference_path", "family_num_steps",
    "load_style_reference", "references_to_json_dict", "save_style_reference",
]
