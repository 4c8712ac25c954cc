"""A rater's compositions: continuations of their own opening, and their pick stored as answers.

The app's "Continue my tune" page reads an opening (pasted ABC, or an uploaded ABC, MIDI,
MusicXML or JSON file, with the readers and size limits of ``rlcomposer continue``:
:func:`read_pasted_opening`, :func:`read_uploaded_opening`), continues it
:data:`CHOICES_SHOWN` ways with the shipped prior (:func:`compose_continuations`), and stores
the rater's pick (:func:`store_pick`): the continuations go into the pool under the rater's
own tag ``composed:<rater name>`` (:func:`composed_tag`) and the chosen one is preferred over
each of the others, one comparison each (choice ``a``: the chosen continuation is melody A),
in the rater's session and outside any study (they do not count towards a study's items). So
``rlcomposer reward train`` reads them like every other answer of that rater (``--rater NAME``
or ``--tag composed:NAME`` for those alone; ``--per-rater`` gives them to that rater's weights).
"None of these" stores nothing. Tags of compositions are private: a study over the whole pool
never serves them to other raters (:func:`rlcomposer.feedback.pool.is_private_tag`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.answers import ComparisonRecord
from rlcomposer.feedback.pool import COMPOSED_PREFIX
from rlcomposer.feedback.storage import check_client_id
from rlcomposer.feedback.store import FeedbackStore
from rlcomposer.music import limits
from rlcomposer.music.melody import Melody
from rlcomposer.prior.continuation import (
    OPENING_SUFFIXES,
    ContinuationConfig,
    check_opening,
    continue_melody,
    read_opening,
)

CHOICES_SHOWN = 4
"""Continuations shown for one opening: the pick is preferred over the other three."""
COMPOSITION_MODEL = "prior"
"""The model that continues an opening in the app (the shipped prior)."""


class CompositionError(RLComposerError):
    """An opening that cannot be continued, or a pick that cannot be stored (one line)."""


@dataclass(frozen=True)
class Composition:
    """An opening and its continuations, as shown to the rater."""

    opening: Melody
    continuations: tuple[Melody, ...]
    seed: int


def composed_tag(rater_name: str) -> str:
    """The pool tag of a rater's compositions: ``composed:<rater name>``."""
    return f"{COMPOSED_PREFIX}{rater_name}"


def _one_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def read_pasted_opening(text: str) -> Melody:
    """The opening in pasted ABC text (one tune, one voice), within ``rlcomposer continue``'s
    file size limit; else :class:`CompositionError` in one line."""
    if not isinstance(text, str) or not text.strip():
        raise CompositionError("paste an ABC opening first (X:, M:, L:, K: headers, then the notes)")
    return _read_file("opening.abc", text.encode("utf-8"), "the pasted ABC")


def read_uploaded_opening(name: str, data: bytes) -> Melody:
    """The opening in an uploaded file called ``name`` (ABC, MIDI, MusicXML or melody JSON, by its
    suffix), with the readers and limits of ``rlcomposer continue --from``."""
    shown = Path(str(name)).name or "upload"
    suffix = Path(shown).suffix.lower()
    if suffix not in OPENING_SUFFIXES:
        raise CompositionError(f"'{shown}': an opening is an ABC, MIDI, MusicXML or JSON file "
                               f"({', '.join(OPENING_SUFFIXES)})")
    return _read_file(f"opening{suffix}", bytes(data), f"'{shown}'")


def _read_file(file_name: str, data: bytes, shown: str) -> Melody:
    """``read_opening`` on ``data`` written to a private temporary file; its messages name ``shown``."""
    try:
        limits.check_size(data, shown)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / file_name
            path.write_bytes(data)
            try:
                return read_opening(path)
            except RLComposerError as error:
                raise CompositionError(_one_line(error).replace(str(path), shown)) from None
    except CompositionError:
        raise
    except RLComposerError as error:
        raise CompositionError(_one_line(error)) from None


DRAWS_PER_SHOWN = 4
"""Continuations drawn for each one shown, so that the four shown differ."""


def compose_continuations(opening: Melody, num_bars: int, seed: int = 0, model=None,
                          count: int = CHOICES_SHOWN) -> Composition:
    """``count`` continuations of ``opening`` to ``num_bars`` full bars by ``model`` (a loaded
    :class:`~rlcomposer.prior.model.MelodyPrior`; default the shipped prior), each different from
    the others (drawn from :data:`DRAWS_PER_SHOWN` times as many; only an opening whose ending the
    model nearly always writes the same way can leave two alike). An opening too long, already
    as long as asked, or in a metre, mode or pick-up the model cannot take raises
    :class:`CompositionError` in one line."""
    from rlcomposer.prior.model import load_prior, prior_directory

    try:
        check_opening(opening, num_bars)
        config = ContinuationConfig(num_bars=num_bars, num_continuations=count * DRAWS_PER_SHOWN, seed=seed)
        prior = model if model is not None else load_prior(prior_directory(COMPOSITION_MODEL))
        drawn = continue_melody(prior, opening, config, np.random.default_rng(seed), name=COMPOSITION_MODEL)
    except RLComposerError as error:
        raise CompositionError(_one_line(error).replace("--bars", "the length")) from None
    seen: set[tuple[int, ...]] = set()
    shown, alike = [], []
    for melody in drawn:  # the first of each different continuation, in the order drawn
        notes = tuple(int(t) for t in melody.tokens)
        (alike if notes in seen else shown).append(melody)
        seen.add(notes)
    shown = (shown + alike)[:count]
    return Composition(opening, tuple(m.with_metadata(index=i) for i, m in enumerate(shown)), seed)


def store_pick(store: FeedbackStore, rater_id: int, continuations: Sequence[Melody], chosen: int | None,
               pick_id: str, session_id: int | None = None) -> list[ComparisonRecord]:
    """Store a rater's pick among ``continuations``: the melodies under ``composed:<rater name>``
    and ``chosen`` preferred over each other one (``len - 1`` comparisons, melody A the chosen).
    ``chosen`` None ("none of these") stores nothing. ``pick_id`` (a submission id made when the
    continuations were shown) makes storing the same pick twice store it once."""
    continuations = list(continuations)
    if chosen is None:
        return []
    if len(continuations) < 2:
        raise CompositionError(f"a pick needs at least two continuations to choose from, got {len(continuations)}")
    if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen < len(continuations):
        raise CompositionError(f"pick {chosen!r} is not one of the {len(continuations)} continuations")
    check_client_id(pick_id)
    rater = store.get_rater(rater_id)
    added = store.add_melodies(continuations, composed_tag(rater.name), model=COMPOSITION_MODEL)
    ids = added.ids
    records = []
    for other, melody_id in enumerate(ids):
        if other == chosen or melody_id == ids[chosen]:  # a continuation that came out the same as the pick
            continue
        records.append(store.submit_comparison(f"{pick_id}.{other}", rater_id, ids[chosen], melody_id, "a", "a",
                                               session_id=session_id))
    return records


__all__ = ["CHOICES_SHOWN", "Composition", "CompositionError", "compose_continuations", "composed_tag",
           "read_pasted_opening", "read_uploaded_opening", "store_pick"]
