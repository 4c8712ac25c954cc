"""The panel's seed and its shipped reference melodies (``rlcomposer/data/panel_reference.json``),
shared by the members of :mod:`~rlcomposer.preferences.panel` and of
:mod:`~rlcomposer.preferences.metre_panel`."""

from __future__ import annotations

import base64
import json
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from rlcomposer.preferences.listener_errors import ListenerError

PANEL_SEED = 20250611
"""The recipe's seed: member ``k`` is drawn from ``np.random.default_rng([PANEL_SEED, k])``."""
REFERENCE_PATH = Path(__file__).resolve().parents[1] / "data" / "panel_reference.json"
REFERENCE_FORMAT = "rlcomposer.panel_reference"
REFERENCE_SEED = 20250611
"""The seed :func:`~rlcomposer.preferences.panel.write_reference` samples the shipped prior with."""


@lru_cache(maxsize=1)
def reference_tokens() -> np.ndarray:
    """The shipped reference melodies of the prior, ``[2000, 64]`` tokens (read once per process)."""
    try:
        data = json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))
        if data.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, not {REFERENCE_FORMAT!r}")
        shape = (int(data["num_melodies"]), int(data["num_steps"]))
        raw = zlib.decompress(base64.b64decode(data["tokens_zlib_base64"]))
        tokens = np.frombuffer(raw, dtype=np.uint8).reshape(shape).astype(np.int64)
    except (OSError, ValueError, KeyError, zlib.error) as error:
        raise ListenerError(f"panel reference {REFERENCE_PATH.name} is unreadable ({error}): "
                            "regenerate it with rlcomposer.preferences.panel.write_reference()") from None
    tokens.setflags(write=False)
    return tokens


__all__ = ["PANEL_SEED", "REFERENCE_FORMAT", "REFERENCE_PATH", "REFERENCE_SEED", "reference_tokens"]
