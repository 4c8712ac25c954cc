"""The melody's JSON file format (``rlcomposer.melody``, version 1): written and read.

A melody's JSON holds its tokens (what is read back), its notes (for people and other
programs; not read), its metre, key, pick-up and metadata. Reading checks the format's name
and version, the tokens (:func:`~rlcomposer.music.limits.check_json_tokens`), the declared
metre and key, the pick-up and that the declared bar length is the metre's. Written with sorted
keys, so equal melodies give equal bytes. :class:`~rlcomposer.music.melody.Melody`'s
``to_json_dict`` / ``from_json_dict`` delegate here (this module does not import it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlcomposer.music import limits
from rlcomposer.music.notation import declared_metre_and_key
from rlcomposer.music.tokens import MelodyError

JSON_FORMAT = "rlcomposer.melody"  # the file format's name (kept when the module moved)
JSON_VERSION = 1


def melody_json_dict(melody) -> dict[str, Any]:
    """The JSON object of a melody (a :class:`~rlcomposer.music.melody.Melody`)."""
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "steps_per_bar": melody.metre.steps_per_bar,
        "metre": melody.metre.name,
        "key": {"tonic": melody.key.tonic, "mode": melody.key.mode},
        "num_steps": melody.num_steps,
        "pickup_steps": melody.pickup_steps,
        "tokens": melody.tokens.tolist(),
        "notes": [list(n) for n in melody.notes()],
        "metadata": melody.metadata,
    }


def melody_from_json_dict(melody_class, data: dict[str, Any]):
    """A ``melody_class`` (:class:`~rlcomposer.music.melody.Melody`) read from its JSON object;
    raises :class:`~rlcomposer.music.tokens.MelodyError` naming what is wrong."""
    if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
        raise MelodyError(f"not an rlcomposer melody (expected format '{JSON_FORMAT}')")
    if data.get("version") != JSON_VERSION:
        raise MelodyError(f"unsupported melody JSON version {data.get('version')!r}")
    tokens = limits.check_json_tokens(data.get("tokens"))
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise MelodyError("melody JSON 'metadata' must be an object")
    metre, key = declared_metre_and_key(data)
    pickup = data.get("pickup_steps", 0)  # absent in files written before pick-ups
    if isinstance(pickup, bool) or not isinstance(pickup, int):
        raise MelodyError(f"melody JSON: the pick-up (pickup_steps) must be a whole number of steps, got {pickup!r}", "invalid")
    melody = melody_class(np.asarray(tokens, dtype=np.int64), metadata, metre, key, pickup)
    declared = data.get("steps_per_bar", metre.steps_per_bar)
    if declared != metre.steps_per_bar:
        raise MelodyError(
            f"its notes are barred in {declared!r} steps, but a bar of {metre.name} is "
            f"{metre.steps_per_bar} steps", "metre")
    return melody


__all__ = ["JSON_FORMAT", "JSON_VERSION", "melody_from_json_dict", "melody_json_dict"]
