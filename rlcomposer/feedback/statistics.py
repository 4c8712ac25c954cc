"""What the dashboard and the listening page compute from the stored feedback.

Every function takes a :class:`~rlcomposer.feedback.store.FeedbackStore` and
reads through its public methods (this module writes no SQL and stores nothing):

* :func:`activity` — submissions per day, per rater or per melody tag;
* :func:`agreement` — how often different raters agree on the same pair or melody;
* :func:`self_consistency` — per rater, how often a deliberate repeat got the
  same answer as the first time;
* :func:`tag_win_rates` — each tag's A/B win-rate against each other tag;
* :func:`browse_melodies` — the pool with its ratings and wins, best rated first.

A/B answers score as :data:`~rlcomposer.preferences.choices.CHOICE_SCORE` says
(A won 1, B won 0, a tie ½); skips say nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from rlcomposer.feedback.store import FeedbackError, FeedbackStore
from rlcomposer.preferences.choices import CHOICE_SCORE

ACTIVITY_BY = ("rater", "tag")


@dataclass(frozen=True)
class MelodySummary:
    """One line of the listening page."""

    id: int
    tag: str
    model: str | None
    seed: int | None
    num_ratings: int
    mean_stars: float | None
    comparisons: int
    wins: float
    metre: str = "4/4"
    """Its time signature (``6/8``), as stored."""
    key: str = "C major"
    """Its key, as stored."""
    pickup_steps: int | str = 0
    """Sixteenth steps before its first downbeat, as stored."""


def activity(store: FeedbackStore, by: str = "rater") -> list[dict[str, Any]]:
    """Submissions per day and per rater (``by="rater"``) or per melody tag (``by="tag"``)."""
    if by not in ACTIVITY_BY:
        raise FeedbackError(f"activity by {by!r}: use rater or tag")
    counts: Counter[tuple[str, str]] = Counter()
    for row in store.export_rows(include_tokens=False):
        day = row["created_at"][:10]
        if by == "rater":
            counts[(day, row["rater"])] += 1
        else:
            for tag in {row["melody_tag"], row["melody_b_tag"]} - {None}:
                counts[(day, tag)] += 1
    return [{"day": d, by: k, "count": n} for (d, k), n in sorted(counts.items())]


def agreement(store: FeedbackStore) -> dict[str, Any]:
    """Agreement between different raters on the same item.

    Pairs: the share of two-rater agreements on unordered pairs both judged
    with a (non-skip) answer, where a tie agrees only with a tie. Stars: the
    mean absolute difference and the share within one star, over melodies
    rated by two or more raters (each rater's first rating)."""
    by_pair: dict[frozenset[int], dict[int, Any]] = defaultdict(dict)
    for c in store.comparisons():
        if c.choice == "skip" or c.is_repeat:
            continue
        by_pair[frozenset((c.melody_a_id, c.melody_b_id))].setdefault(c.rater_id, c.winner_id or "tie")
    pair_total, pair_agree = rater_pairs(by_pair)
    by_melody: dict[int, dict[int, int]] = defaultdict(dict)
    for r in store.ratings():
        if not r.is_repeat:
            by_melody[r.melody_id].setdefault(r.rater_id, r.stars)
    diffs = []
    for answers in by_melody.values():
        values = list(answers.values())
        diffs += [abs(values[i] - values[j]) for i in range(len(values)) for j in range(i + 1, len(values))]
    return {
        "pair_judgement_pairs": pair_total,
        "pair_agreement": pair_agree / pair_total if pair_total else None,
        "star_judgement_pairs": len(diffs),
        "star_mean_abs_difference": sum(diffs) / len(diffs) if diffs else None,
        "star_within_one": sum(d <= 1 for d in diffs) / len(diffs) if diffs else None,
    }


def rater_pairs(answers_by_item: dict[Any, dict[int, Any]],
                agree=lambda a, b: a == b) -> tuple[int, int]:
    """Over every item, every two raters' answers to it: how many such pairs, and how many agree."""
    total = agreeing = 0
    for answers in answers_by_item.values():
        values = list(answers.values())
        for i in range(len(values)):
            for j in range(i + 1, len(values)):
                total += 1
                agreeing += bool(agree(values[i], values[j]))
    return total, agreeing


def self_consistency(store: FeedbackStore) -> list[dict[str, Any]]:
    """Per rater: how often a deliberate repeat got the same answer as the first time
    (pairs: the same winner or tie, whatever side it was shown on; stars: exact and within one)."""
    raters = {r.id: r.name for r in store.raters()}
    first_pair: dict[tuple[int, frozenset[int]], Any] = {}
    first_star: dict[tuple[int, int], int] = {}
    result: dict[int, dict[str, int]] = defaultdict(lambda: Counter())
    for c in store.comparisons():
        key = (c.rater_id, frozenset((c.melody_a_id, c.melody_b_id)))
        answer = "skip" if c.choice == "skip" else (c.winner_id or "tie")
        if c.is_repeat and key in first_pair:
            if "skip" not in (answer, first_pair[key]):
                result[c.rater_id]["pair_repeats"] += 1
                result[c.rater_id]["pair_same"] += answer == first_pair[key]
        else:
            first_pair.setdefault(key, answer)
    for r in store.ratings():
        key = (r.rater_id, r.melody_id)
        if r.is_repeat and key in first_star:
            result[r.rater_id]["star_repeats"] += 1
            result[r.rater_id]["star_same"] += r.stars == first_star[key]
            result[r.rater_id]["star_within_one"] += abs(r.stars - first_star[key]) <= 1
        else:
            first_star.setdefault(key, r.stars)
    rows = []
    for rater_id, c in sorted(result.items()):
        rows.append({
            "rater": raters[rater_id],
            "pair_repeats": c["pair_repeats"],
            "pair_consistency": c["pair_same"] / c["pair_repeats"] if c["pair_repeats"] else None,
            "star_repeats": c["star_repeats"],
            "star_exact": c["star_same"] / c["star_repeats"] if c["star_repeats"] else None,
            "star_within_one": c["star_within_one"] / c["star_repeats"] if c["star_repeats"] else None,
        })
    return rows


def tag_win_rates(store: FeedbackStore) -> list[dict[str, Any]]:
    """For each ordered pair of different tags met in A/B: the first tag's win-rate
    (ties count ½; skips and deliberate repeats left out) and the number of comparisons."""
    tag_of = store.melody_tags()
    wins: Counter[tuple[str, str]] = Counter()
    games: Counter[tuple[str, str]] = Counter()
    for c in store.comparisons():
        if c.choice == "skip" or c.is_repeat:
            continue
        ta, tb = tag_of[c.melody_a_id], tag_of[c.melody_b_id]
        if ta == tb:
            continue
        score_a = CHOICE_SCORE[c.choice]
        games[(ta, tb)] += 1
        games[(tb, ta)] += 1
        wins[(ta, tb)] += score_a
        wins[(tb, ta)] += 1 - score_a
    return [{"tag": a, "against": b, "win_rate": wins[(a, b)] / n, "comparisons": n}
            for (a, b), n in sorted(games.items())]


def browse_melodies(store: FeedbackStore, tag: str | None = None, min_mean_stars: float | None = None,
                    limit: int = 200) -> list[MelodySummary]:
    """Melodies with their ratings, best rated first (listening page): the number
    of A/B comparisons each took part in (skips left out, repeats counted) and
    its wins (ties ½)."""
    pool = store.pool_melodies(tag)
    games: Counter[int] = Counter()
    wins: Counter[int] = Counter()
    for c in store.comparisons():
        if c.choice == "skip":
            continue
        games[c.melody_a_id] += 1
        games[c.melody_b_id] += 1
        score_a = CHOICE_SCORE[c.choice]
        wins[c.melody_a_id] += score_a
        wins[c.melody_b_id] += 1 - score_a
    rows = [
        MelodySummary(m.id, m.tag, m.model, m.seed, m.num_ratings, m.mean_stars, games[m.id], wins[m.id],
                      m.metre, m.key, m.pickup_steps)
        for m in pool
        if min_mean_stars is None or (m.mean_stars is not None and m.mean_stars >= min_mean_stars)
    ]
    rows.sort(key=lambda s: (-(s.mean_stars or 0), -s.num_ratings, s.id))
    return rows[:limit]


__all__ = [
    "ACTIVITY_BY", "MelodySummary", "activity", "agreement", "browse_melodies", "self_consistency",
    "tag_win_rates",
]
