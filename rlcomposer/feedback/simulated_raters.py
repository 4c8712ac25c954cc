"""Simulated raters: a simulated listener rates the pool through the store, like a person.

The listener (:class:`~rlcomposer.preferences.listeners.SimulatedListener`)
decides; this module asks it about the items a selection strategy picks and
writes its answers with the same store functions as the app, as rater
``sim:<function>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlcomposer.feedback.selection import RandomSelection
from rlcomposer.feedback.store import FeedbackStore, check_tag, new_client_id
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.listeners import ListenerError, SimulatedListener


def simulate_ratings(store: FeedbackStore, listener: SimulatedListener, *, pairs: int, stars: int = 0,
                     tag: str | None = None, strategy=None,
                     rng: np.random.Generator | int | None = None,
                     reference_tag: str | None = None,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Let ``listener`` answer ``pairs`` comparisons and give ``stars`` star ratings.

    Items come from the pool (all of it, or ``tag``) through ``strategy``
    (default: :class:`~rlcomposer.feedback.selection.RandomSelection` without
    deliberate repeats) and are written with the store's ``submit_comparison`` /
    ``submit_rating`` (client-made ids) as rater ``sim:<function>``. An
    uncalibrated listener is calibrated on the pool melodies of
    ``reference_tag`` (default: ``tag``, else the whole pool) first.
    Stops early when the rater has judged every item. Returns the counts.
    """
    for what, value in (("pairs", pairs), ("stars", stars)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ListenerError(f"{what} {value!r} must be a whole number, 0 or more")
    if tag is not None:
        check_tag(tag)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    tags = [tag] if tag else None
    pool_ids = store.melody_ids(tags)
    if not pool_ids:
        raise ListenerError(f"the pool{f' of tag {tag!r}' if tag else ''} is empty: "
                            "add melodies with `rlcomposer pool add`")
    if pairs and len(pool_ids) < 2:
        raise ListenerError(f"comparisons need at least 2 melodies in the pool, found {len(pool_ids)}")
    melodies: dict[int, Melody] = {}

    def fetch(ids: Sequence[int]) -> None:
        missing = [i for i in ids if i not in melodies]
        for start in range(0, len(missing), 500):
            for melody_id, record in store.get_melodies(missing[start:start + 500]).items():
                melodies[melody_id] = record.melody

    if listener.spread is None or listener.star_edges is None:
        ref_ids = store.melody_ids([reference_tag]) if reference_tag else pool_ids
        if not ref_ids:
            raise ListenerError(f"no melodies with tag {reference_tag!r} to calibrate the listener on")
        fetch(ref_ids)
        listener.calibrate([melodies[i] for i in ref_ids])
    if strategy is None:
        strategy = RandomSelection(repeat_share=0.0, tags=tuple(tags or ()),
                                   seed=int(rng.integers(0, 2**31 - 1)))
    rater = store.sign_in(listener.rater_name, kind="simulated")
    counts: dict[str, Any] = {"rater": listener.rater_name, "rater_id": rater.id, "tag": tag,
                              "spread": listener.spread, "comparisons": 0, "a": 0, "b": 0, "tie": 0,
                              "stars": 0, "star_counts": {str(s): 0 for s in range(1, 6)},
                              "exhausted": False}
    report_every = max(1, (pairs + stars) // 10)
    done = 0
    for _ in range(pairs):
        item = strategy.next_item(store, rater.id, "pair")
        if item is None:
            counts["exhausted"] = True
            break
        a_id, b_id = item.melody_ids
        fetch([a_id, b_id])
        choice = listener.compare(melodies[a_id], melodies[b_id])
        shown_left = "a" if rng.random() < 0.5 else "b"
        store.submit_comparison(new_client_id(), rater.id, a_id, b_id, choice, shown_left,
                                is_repeat=item.is_repeat)
        counts["comparisons"] += 1
        counts[choice] += 1
        done += 1
        if progress and done % report_every == 0:
            progress(f"{listener.rater_name}: {done}/{pairs + stars} answers")
    for _ in range(stars):
        item = strategy.next_item(store, rater.id, "single")
        if item is None:
            counts["exhausted"] = True
            break
        (melody_id,) = item.melody_ids
        fetch([melody_id])
        value = listener.stars(melodies[melody_id])
        store.submit_rating(new_client_id(), rater.id, melody_id, value, is_repeat=item.is_repeat)
        counts["stars"] += 1
        counts["star_counts"][str(value)] += 1
        done += 1
        if progress and done % report_every == 0:
            progress(f"{listener.rater_name}: {done}/{pairs + stars} answers")
    return counts
