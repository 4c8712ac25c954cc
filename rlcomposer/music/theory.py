"""Music-theory reward terms: key-aware versions of RL Tuner's rules.

Each term scores a whole melody; the environment adds them at the end of the
episode, each multiplied by its weight. The rules are those of
:mod:`rlcomposer.music.metrics` (ported from RL Tuner), applied as rewards:

* ``in_key``: minus the share of notes outside the key (the melody's own key and
  mode; RL Tuner hard-codes C major);
* ``tonic``: +0.5 if the first note is the key's tonic, +0.5 if the last one is;
* ``leaps``: (resolved leaps - unresolved "doubled" leaps) / max(1, leaps), in -1..1;
* ``repetition``: minus the share of steps that repeat a note excessively;
* ``motif``: the share of steps that end a motif, plus that of a repeated motif.

Each term lies in roughly -1..1 per melody, so weights compare directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlcomposer.music.keys import DEFAULT_KEY, Key
from rlcomposer.music.melody import MIN_PITCH, NUM_SPECIAL_TOKENS
from rlcomposer.music.metrics import (
    LEAP_DOUBLED,
    LEAP_RESOLVED,
    excessive_repeats,
    leap_resolutions,
    notes_in_motif,
    notes_in_repeated_motif,
    notes_not_in_key,
)

THEORY_TERMS = ("in_key", "tonic", "leaps", "repetition", "motif")


def _pitch_class(token: int) -> int:
    return (int(token) - NUM_SPECIAL_TOKENS + MIN_PITCH) % 12


def in_key(tokens: np.ndarray, key: Key = DEFAULT_KEY) -> float:
    onsets = np.count_nonzero(tokens >= NUM_SPECIAL_TOKENS)
    return -float(np.count_nonzero(notes_not_in_key(tokens, key))) / max(onsets, 1)


def tonic(tokens: np.ndarray, key: Key = DEFAULT_KEY) -> float:
    onsets = tokens[tokens >= NUM_SPECIAL_TOKENS]
    if onsets.size == 0:
        return 0.0
    home = key.tonic_pitch_class
    return 0.5 * (_pitch_class(onsets[0]) == home) + 0.5 * (_pitch_class(onsets[-1]) == home)


KEY_TERMS = ("in_key", "tonic")
"""Terms judged in the melody's key (the others do not depend on it)."""


def leaps(tokens: np.ndarray) -> float:
    marks = leap_resolutions(tokens)
    resolved = np.count_nonzero(marks == LEAP_RESOLVED)
    doubled = np.count_nonzero(marks == LEAP_DOUBLED)
    return float(resolved - doubled) / max(resolved + doubled, 1)


def repetition(tokens: np.ndarray) -> float:
    return -float(np.count_nonzero(excessive_repeats(tokens))) / tokens.size


def motif(tokens: np.ndarray) -> float:
    return float(
        np.count_nonzero(notes_in_motif(tokens)) + np.count_nonzero(notes_in_repeated_motif(tokens))
    ) / tokens.size


TERM_FUNCTIONS = {"in_key": in_key, "tonic": tonic, "leaps": leaps, "repetition": repetition,
                  "motif": motif}


def _term(term: str, tokens: np.ndarray, key: Key) -> float:
    if term in KEY_TERMS:
        return TERM_FUNCTIONS[term](tokens, key)
    return TERM_FUNCTIONS[term](tokens)


def theory_terms(token_batch: np.ndarray, terms: Sequence[str] = THEORY_TERMS,
                 key: Key = DEFAULT_KEY) -> dict[str, np.ndarray]:
    """Each requested term for each melody of a ``[batch, steps]`` token array in ``key``."""
    unknown = [t for t in terms if t not in TERM_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown music-theory term '{unknown[0]}' (known: {', '.join(THEORY_TERMS)})")
    token_batch = np.asarray(token_batch)
    return {
        term: np.array([_term(term, row, key) for row in token_batch], dtype=np.float64)
        for term in terms
    }


def theory_reward(melody) -> float:
    """All five terms with weight 1: a melody-level reward function (``module:function``).

    ``--reward rlcomposer.music.theory:theory_reward`` makes best-of-N sampling
    and evaluation use the same rules as a music-theory tuning run.
    """
    tokens = np.asarray(melody.tokens, dtype=np.int64)
    key = getattr(melody, "key", DEFAULT_KEY)
    return float(sum(_term(term, tokens, key) for term in THEORY_TERMS))
