"""What the organiser area shows: people and simulated raters apart, with their n.

Every function reads the store's export rows (or its public methods) and writes nothing:

* :func:`answers_of_kind` — the export rows of people (``person``) or of simulated listeners;
* :func:`answer_counts` — the dashboard's counts: star ratings, comparisons, skips;
* :func:`activity_series` — answers per hour (or cumulative), per rater or per tag
  (skips are not answers: they are left out, as from the counts);
* :func:`win_rates_with_intervals` — each tag's A/B win-rate against each other tag
  with a 95% Wilson interval (ties count ½, skips and repeats left out);
* :func:`agreement_summary` — agreement between raters and self-consistency on
  repeats, each with its n, and a sentence saying why a figure is empty.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from rlcomposer.confidence_intervals import wilson_interval
from rlcomposer.feedback.statistics import rater_pairs, self_consistency
from rlcomposer.feedback.store import FeedbackError, FeedbackStore
from rlcomposer.preferences.choices import CHOICE_SCORE

RATER_KINDS = ("person", "simulated")


def answers_of_kind(store: FeedbackStore, kind: str = "person", study_id: int | None = None) -> list[dict[str, Any]]:
    """Export rows (without tokens) of raters of ``kind`` (in one study, if given), oldest first."""
    if kind not in RATER_KINDS:
        raise FeedbackError(f"rater kind {kind!r} must be person or simulated")
    return [r for r in store.export_rows(include_tokens=False)
            if r["rater_kind"] == kind and (study_id is None or r["study_id"] == study_id)]


def is_skip(row: dict[str, Any]) -> bool:
    return row["kind"] == "comparison" and row["choice"] == "skip"


def answer_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """``{"raters", "stars", "comparisons", "skips"}`` of export rows: comparisons are the
    answered ones (skips apart), so ``stars + comparisons`` is what :func:`activity_series` adds up."""
    return {"raters": len({r["rater"] for r in rows}),
            "stars": sum(r["kind"] == "stars" for r in rows),
            "comparisons": sum(r["kind"] == "comparison" and not is_skip(r) for r in rows),
            "skips": sum(is_skip(r) for r in rows)}


def activity_series(rows: list[dict[str, Any]], by: str = "rater", cumulative: bool = False) -> list[dict[str, Any]]:
    """Answers (skips left out) per hour (UTC, ``YYYY-MM-DD HH:00``) and per rater or tag;
    with ``cumulative``, the running total at each hour that had answers. By tag, a pair of
    two tags counts once for each."""
    if by not in ("rater", "tag"):
        raise FeedbackError(f"activity by {by!r}: use rater or tag")
    counts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if is_skip(row):
            continue
        hour = row["created_at"][:13].replace("T", " ") + ":00"
        keys = [row["rater"]] if by == "rater" else sorted({row["melody_tag"], row["melody_b_tag"]} - {None})
        for key in keys:
            counts[(hour, key)] += 1
    series = [{"hour": h, by: k, "count": n} for (h, k), n in sorted(counts.items())]
    if cumulative:
        hours = sorted({s["hour"] for s in series})
        keys = sorted({s[by] for s in series})
        running = dict.fromkeys(keys, 0)
        by_hour = {(s["hour"], s[by]): s["count"] for s in series}
        series = []
        for hour in hours:
            for key in keys:
                running[key] += by_hour.get((hour, key), 0)
                series.append({"hour": hour, by: key, "count": running[key]})
    return series


def win_rates_with_intervals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ordered pair of different tags met in A/B: the first tag's win-rate with its 95%
    interval, the number of comparisons (ties ½; skips and deliberate repeats left out)."""
    wins: Counter[tuple[str, str]] = Counter()
    games: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["kind"] != "comparison" or row["choice"] == "skip" or row["is_repeat"]:
            continue
        ta, tb = row["melody_tag"], row["melody_b_tag"]
        if ta == tb:
            continue
        score_a = CHOICE_SCORE[row["choice"]]
        games[(ta, tb)] += 1
        games[(tb, ta)] += 1
        wins[(ta, tb)] += score_a
        wins[(tb, ta)] += 1 - score_a
    result = []
    for (a, b), n in sorted(games.items()):
        low, high = wilson_interval(wins[(a, b)], n)
        result.append({"tag": a, "against": b, "win_rate": wins[(a, b)] / n, "low_95": low, "high_95": high,
                       "comparisons": n})
    return result


@dataclass(frozen=True)
class AgreementSummary:
    """Agreement between raters and self-consistency, each with its n and why it may be empty."""

    pair_agreement: float | None
    pair_n: int
    """Pairs of judgements of the same pair of melodies by two different raters."""
    star_within_one: float | None
    star_n: int
    """Pairs of star ratings of the same melody by two different raters."""
    repeat_consistency: float | None
    repeat_n: int
    """Deliberate repeats answered (pairs and stars)."""
    reasons: dict[str, str]
    """For each empty figure (``pairs``, ``stars``, ``repeats``), why it is empty."""


def agreement_summary(store: FeedbackStore, rows: list[dict[str, Any]]) -> AgreementSummary:
    """Agreement and self-consistency of the raters of ``rows`` (e.g. people only)."""
    by_pair: dict[frozenset[int], dict[str, Any]] = defaultdict(dict)
    by_melody: dict[int, dict[str, int]] = defaultdict(dict)
    raters = {r["rater"] for r in rows}
    for row in rows:
        if row["is_repeat"]:
            continue
        if row["kind"] == "comparison" and row["choice"] != "skip":
            winner = {"a": row["melody_id"], "b": row["melody_b_id"]}.get(row["choice"], "tie")
            by_pair[frozenset((row["melody_id"], row["melody_b_id"]))].setdefault(row["rater"], winner)
        elif row["kind"] == "stars":
            by_melody[row["melody_id"]].setdefault(row["rater"], row["stars"])
    pair_n, pair_same = rater_pairs(by_pair)
    star_n, star_close = rater_pairs(by_melody, lambda a, b: abs(a - b) <= 1)
    consistency = [c for c in self_consistency(store) if c["rater"] in raters]
    repeat_n = sum(c["pair_repeats"] + c["star_repeats"] for c in consistency)
    same = sum((c["pair_consistency"] or 0) * c["pair_repeats"] + (c["star_exact"] or 0) * c["star_repeats"]
               for c in consistency)
    reasons = {}
    comparisons = sum(r["kind"] == "comparison" for r in rows)
    stars = sum(r["kind"] == "stars" for r in rows)
    if not pair_n:
        reasons["pairs"] = (f"no pair of melodies has been judged by two different raters yet "
                            f"({comparisons} comparisons by {len(raters)} raters)")
    if not star_n:
        reasons["stars"] = (f"no melody has star ratings from two different raters yet "
                            f"({stars} star ratings)")
    if not repeat_n:
        reasons["repeats"] = ("no deliberate repeat has been answered yet (they start after a rater's "
                              "first few answers, at the study's repeat share)")
    return AgreementSummary(pair_same / pair_n if pair_n else None, pair_n,
                            star_close / star_n if star_n else None, star_n,
                            same / repeat_n if repeat_n else None, repeat_n, reasons)


__all__ = [
    "AgreementSummary", "RATER_KINDS", "activity_series", "agreement_summary", "answers_of_kind",
    "wilson_interval", "win_rates_with_intervals",
]
