"""Answers: star ratings and comparisons (submitted once per client id), the item on a
rater's screen, the melodies they have heard, their history, and the export rows.

Every submission carries a ``client_id`` made by the client (a UUID made when the item was
shown). Submitting the same id again returns the row already stored (``created=False``)
instead of storing a second one; the same id with a different answer is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rlcomposer.feedback.pool import MADE_FOR_YOU_PREFIXES, stored_layout_text
from rlcomposer.feedback.schema import (
    CHOICES,
    MAX_STARS,
    MIN_STARS,
    SIDES,
    Comparison,
    CurrentItem,
    HeardMelody,
    Model,
    Rater,
    RatingSession,
    StarRating,
    StoredMelody,
    Study,
    utcnow,
)
from rlcomposer.feedback.storage import (
    FeedbackError,
    StoreBase,
    check_client_id,
    check_id,
    check_timing,
)


def new_client_id() -> str:
    """A fresh submission id (what a client makes when it shows an item)."""
    return uuid.uuid4().hex


def _of_study(session: Session, query: sa.Select, model: type, study_id: int) -> sa.Select:
    """``query`` of the answers (of ``model``) that count towards study ``study_id``: every
    answer stored with the study but a comparison with a "made for you" melody
    (:data:`~rlcomposer.feedback.pool.MADE_FOR_YOU_PREFIXES`; the blind A/B a rater answers after
    finishing) that is not of the study's own pool tags. The one place that says which answers
    of a study count: a rater's progress in the app and the study's progress both read it."""
    query = query.where(model.study_id == study_id)
    if model is not Comparison:
        return query
    pool_tags = session.scalar(sa.select(Study.pool_tags).where(Study.id == study_id)) or []
    made = sa.select(StoredMelody.id).where(
        sa.or_(*(StoredMelody.tag.startswith(prefix, autoescape=True) for prefix in MADE_FOR_YOU_PREFIXES)))
    if pool_tags:
        made = made.where(StoredMelody.tag.not_in(list(pool_tags)))
    return query.where(Comparison.melody_a_id.not_in(made), Comparison.melody_b_id.not_in(made))


@dataclass(frozen=True)
class RatingRecord:
    """A stored star rating; ``created`` is False when the id was already stored."""

    id: int
    client_id: str
    rater_id: int
    melody_id: int
    stars: int
    session_id: int | None
    is_repeat: bool
    listened_ms: int | None
    answer_ms: int | None
    created_at: datetime
    created: bool
    study_id: int | None = None


@dataclass(frozen=True)
class ComparisonRecord:
    """A stored comparison; ``choice`` refers to melody_a / melody_b, not to screen sides."""

    id: int
    client_id: str
    rater_id: int
    melody_a_id: int
    melody_b_id: int
    shown_left: str
    choice: str
    session_id: int | None
    is_repeat: bool
    listened_ms: int | None
    answer_ms: int | None
    created_at: datetime
    created: bool
    study_id: int | None = None

    @property
    def winner_id(self) -> int | None:
        """The preferred melody, or None for a tie or a skip."""
        return {"a": self.melody_a_id, "b": self.melody_b_id}.get(self.choice)


EXPORT_COLUMNS = (
    "kind", "id", "client_id", "created_at", "rater", "rater_kind", "session_id",
    "stars", "choice", "shown_left", "is_repeat", "listened_ms", "answer_ms",
    "melody_id", "melody_tag", "melody_model", "melody_seed", "melody_tokens",
    "melody_b_id", "melody_b_tag", "melody_b_model", "melody_b_seed", "melody_b_tokens", "study_id", "study",
    "melody_metre", "melody_key", "melody_pickup_steps", "melody_b_metre", "melody_b_key", "melody_b_pickup_steps",
)
"""The export's columns, in order (later ones were added at the end, so that the earlier keep their place).
``*_metre``, ``*_key`` and ``*_pickup_steps``: how the melody is barred and spelled (``6/8``,
``G major``, sixteenth steps before the first downbeat), as stored."""


def _check_stars(stars: Any) -> int:
    if isinstance(stars, bool) or not isinstance(stars, int) or not MIN_STARS <= stars <= MAX_STARS:
        raise FeedbackError(f"rating {stars!r} is outside {MIN_STARS}-{MAX_STARS} stars")
    return stars


class AnswerStore(StoreBase):
    """The answers of the store."""

    # -------------------------------------------------------------- submits
    def _existing_rater_and_melodies(self, session: Session, rater_id: int, melody_ids: Sequence[int],
                                     session_id: int | None, study_id: int | None = None) -> None:
        if session.get(Rater, rater_id) is None:
            raise FeedbackError(f"rater id {rater_id} is unknown")
        stored = []
        for melody_id in melody_ids:
            row = session.get(StoredMelody, melody_id)
            if row is None:
                raise FeedbackError(f"melody id {melody_id} is unknown")
            stored.append(row)
        if len(stored) == 2:  # a comparison: two melodies of one metre and one length
            shapes = [(str((row.extra or {}).get("metre", "4/4")), int(row.num_steps)) for row in stored]
            if shapes[0] != shapes[1]:
                raise FeedbackError(
                    f"melodies {melody_ids[0]} ({shapes[0][1]} steps of {shapes[0][0]}) and {melody_ids[1]} "
                    f"({shapes[1][1]} steps of {shapes[1][0]}) differ in metre or length: a comparison is "
                    "between melodies of one metre and one length; nothing stored")
        if session_id is not None:
            row = session.get(RatingSession, session_id)
            if row is None or row.rater_id != rater_id:
                raise FeedbackError(f"session id {session_id} is unknown for rater id {rater_id}")
        if study_id is not None:
            study = session.get(Study, study_id)
            if study is None:
                raise FeedbackError(f"study id {study_id} is unknown")
            if study.status != "open":
                raise FeedbackError(f"the study {study.name!r} is closed: it takes no more answers")

    def submit_rating(self, client_id: str, rater_id: int, melody_id: int, stars: int, *,
                      session_id: int | None = None, is_repeat: bool = False,
                      listened_ms: float | None = None, answer_ms: float | None = None,
                      study_id: int | None = None) -> RatingRecord:
        """Store ``stars`` (1-5) for a melody, once per ``client_id`` (in study ``study_id``, if given)."""
        values = dict(
            study_id=None if study_id is None else check_id(study_id, "study id"),
            client_id=check_client_id(client_id), rater_id=check_id(rater_id, "rater id"),
            melody_id=check_id(melody_id, "melody id"), stars=_check_stars(stars),
            session_id=None if session_id is None else check_id(session_id, "session id"),
            is_repeat=bool(is_repeat), listened_ms=check_timing(listened_ms, "time listened"),
            answer_ms=check_timing(answer_ms, "time to answer"))
        return self._submit(StarRating, values, ("rater_id", "melody_id", "stars"), (melody_id,),
                            _rating_record)

    def submit_comparison(self, client_id: str, rater_id: int, melody_a_id: int, melody_b_id: int,
                          choice: str, shown_left: str, *, session_id: int | None = None,
                          is_repeat: bool = False, listened_ms: float | None = None,
                          answer_ms: float | None = None, study_id: int | None = None) -> ComparisonRecord:
        """Store a choice (``a``, ``b``, ``tie`` or ``skip``, about melody_a / melody_b)
        and which of them was shown on the left, once per ``client_id``."""
        if choice not in CHOICES:
            raise FeedbackError(f"choice {choice!r} must be one of {', '.join(CHOICES)}")
        if shown_left not in SIDES:
            raise FeedbackError(f"shown_left {shown_left!r} must be 'a' or 'b'")
        check_id(melody_a_id, "melody id")
        check_id(melody_b_id, "melody id")
        if melody_a_id == melody_b_id:
            raise FeedbackError(f"a comparison needs two different melodies, got {melody_a_id} twice")
        values = dict(
            study_id=None if study_id is None else check_id(study_id, "study id"),
            client_id=check_client_id(client_id), rater_id=check_id(rater_id, "rater id"),
            melody_a_id=melody_a_id, melody_b_id=melody_b_id, choice=choice, shown_left=shown_left,
            session_id=None if session_id is None else check_id(session_id, "session id"),
            is_repeat=bool(is_repeat), listened_ms=check_timing(listened_ms, "time listened"),
            answer_ms=check_timing(answer_ms, "time to answer"))
        return self._submit(Comparison, values,
                            ("rater_id", "melody_a_id", "melody_b_id", "choice", "shown_left"),
                            (melody_a_id, melody_b_id), _comparison_record)

    def _submit(self, model, values: dict[str, Any], identity: Sequence[str],
                melody_ids: Sequence[int], to_record):
        with self._session(write=True) as session:
            existing = session.scalars(sa.select(model).where(model.client_id == values["client_id"])).first()
            if existing is None and values["study_id"] is not None and not values["is_repeat"] \
                    and self._already_answered(session, model, values):
                raise FeedbackError("this item was already answered (in another tab or window?); "
                                    "nothing stored twice")
            if existing is None:
                self._existing_rater_and_melodies(session, values["rater_id"], melody_ids, values["session_id"],
                                                  values["study_id"])
                result = session.execute(self._insert(model, **values, created_at=utcnow())
                                         .on_conflict_do_nothing(index_elements=["client_id"])
                                         .returning(model.id))
                created = result.first() is not None
                existing = session.scalars(sa.select(model).where(model.client_id == values["client_id"])).one()
            else:
                created = False
            if any(getattr(existing, key) != values[key] for key in identity):
                raise FeedbackError(
                    f"submission id {values['client_id']!r} was already used for a different answer; "
                    "nothing stored")
            return to_record(existing, created)

    @staticmethod
    def _already_answered(session: Session, model, values: dict[str, Any]) -> bool:
        """Whether the rater already answered this melody or unordered pair in this study
        (within a study an item is answered once per rater, deliberate repeats aside)."""
        query = sa.select(model.id).where(model.rater_id == values["rater_id"],
                                          model.study_id == values["study_id"])
        if model is StarRating:
            query = query.where(StarRating.melody_id == values["melody_id"])
        else:
            a, b = values["melody_a_id"], values["melody_b_id"]
            query = query.where(sa.or_(sa.and_(Comparison.melody_a_id == a, Comparison.melody_b_id == b),
                                       sa.and_(Comparison.melody_a_id == b, Comparison.melody_b_id == a)))
        return session.scalars(query.limit(1)).first() is not None

    # -------------------------------------------------------------- history
    def rated_melody_ids(self, rater_id: int) -> set[int]:
        """Melodies ``rater_id`` has given stars to."""
        with self._session() as session:
            return set(session.scalars(sa.select(StarRating.melody_id).where(StarRating.rater_id == rater_id)))

    def compared_pairs(self, rater_id: int) -> set[frozenset[int]]:
        """Unordered pairs ``rater_id`` has compared."""
        with self._session() as session:
            rows = session.execute(sa.select(Comparison.melody_a_id, Comparison.melody_b_id)
                                   .where(Comparison.rater_id == rater_id))
            return {frozenset(row) for row in rows}

    def count_submissions(self, rater_id: int, session_id: int | None = None,
                          study_id: int | None = None) -> dict[str, int]:
        """``{"stars": n, "comparisons": m, "total": n + m, "skips": k, "answered": n + m - k}``
        of a rater (in one session and/or one study, if given); ``skips`` are skipped pairs.
        In one study, the answers of its set only: the "made for you" A/B after it is left out
        (:func:`_of_study`)."""
        counts = {}
        with self._session() as session:
            for key, model in (("stars", StarRating), ("comparisons", Comparison), ("skips", Comparison)):
                query = sa.select(sa.func.count()).select_from(model).where(model.rater_id == rater_id)
                if session_id is not None:
                    query = query.where(model.session_id == session_id)
                if study_id is not None:
                    query = _of_study(session, query, model, study_id)
                if key == "skips":
                    query = query.where(Comparison.choice == "skip")
                counts[key] = session.scalar(query) or 0
        counts["total"] = counts["stars"] + counts["comparisons"]
        counts["answered"] = counts["total"] - counts["skips"]
        return counts

    def recent_items(self, rater_id: int, count: int = 3, study_id: int | None = None) -> list[tuple[int, ...]]:
        """The melodies of the rater's last ``count`` answers (skips included), newest first
        (in study ``study_id`` only, if given)."""
        items: list[tuple[datetime, int, tuple[int, ...]]] = []
        with self._session() as session:
            for model in (StarRating, Comparison):
                columns = (StarRating.melody_id,) if model is StarRating else (Comparison.melody_a_id,
                                                                               Comparison.melody_b_id)
                query = sa.select(model.created_at, model.id, *columns).where(model.rater_id == rater_id)
                if study_id is not None:
                    query = query.where(model.study_id == study_id)
                for created_at, row_id, *ids in session.execute(
                        query.order_by(model.created_at.desc(), model.id.desc()).limit(count)):
                    items.append((created_at, row_id, tuple(ids)))
        items.sort(key=lambda i: (i[0], i[1]), reverse=True)
        return [ids for _, _, ids in items[:count]]

    # -------------------------------------------------------- current item
    def save_current_item(self, rater_id: int, study_id: int, client_id: str, kind: str,
                          melody_ids: Sequence[int], shown_left: str | None, is_repeat: bool,
                          played_ms: dict[str, int] | None = None) -> None:
        """Keep the item on the rater's screen in the study (replacing the one before), so that
        a reload shows it again with what has been played of it."""
        check_client_id(client_id)
        if kind not in ("single", "pair"):
            raise FeedbackError(f"item kind {kind!r} must be single or pair")
        ids = [check_id(i, "melody id") for i in melody_ids]
        values = dict(client_id=client_id, kind=kind, melody_ids=ids, shown_left=shown_left,
                      is_repeat=bool(is_repeat), played_ms=_played(played_ms), shown_at=utcnow())
        with self._session(write=True) as session:
            session.execute(self._insert(CurrentItem, rater_id=check_id(rater_id, "rater id"),
                                         study_id=check_id(study_id, "study id"), **values)
                            .on_conflict_do_update(index_elements=["rater_id", "study_id"], set_=values))

    def record_listening(self, rater_id: int, study_id: int, client_id: str, played_ms: dict[str, int]) -> None:
        """How long each melody of the rater's current item has played (by screen label); kept
        only while that item is still the current one, and never lowered."""
        played = _played(played_ms)
        with self._session(write=True) as session:
            row = session.get(CurrentItem, (rater_id, study_id))
            if row is None or row.client_id != client_id:
                return
            merged = dict(row.played_ms or {})
            for label, ms in played.items():
                merged[label] = max(int(merged.get(label, 0)), ms)
            row.played_ms = merged

    def current_item(self, rater_id: int, study_id: int) -> dict[str, Any] | None:
        """The item kept as the rater's current one in the study (``client_id``, ``kind``,
        ``melody_ids``, ``shown_left``, ``is_repeat``, ``played_ms``), or None when there is
        none or it has been answered since."""
        with self._session() as session:
            row = session.get(CurrentItem, (rater_id, study_id))
            if row is None:
                return None
            for model in (StarRating, Comparison):
                if session.scalars(sa.select(model.id).where(model.client_id == row.client_id)).first():
                    return None
            return {"client_id": row.client_id, "kind": row.kind, "melody_ids": list(row.melody_ids),
                    "shown_left": row.shown_left, "is_repeat": bool(row.is_repeat),
                    "played_ms": dict(row.played_ms or {})}

    def mark_heard(self, rater_id: int, melody_ids: Iterable[int]) -> None:
        """The rater has heard these melodies in full."""
        check_id(rater_id, "rater id")
        with self._session(write=True) as session:
            for melody_id in melody_ids:
                session.execute(self._insert(HeardMelody, rater_id=rater_id,
                                             melody_id=check_id(melody_id, "melody id"), heard_at=utcnow())
                                .on_conflict_do_nothing())

    def heard_melody_ids(self, rater_id: int) -> set[int]:
        """The melodies the rater has heard in full."""
        with self._session() as session:
            return set(session.scalars(sa.select(HeardMelody.melody_id).where(HeardMelody.rater_id == rater_id)))
    def study_answer_counts(self, study_id: int) -> dict[int, dict[str, int]]:
        """Per rater of a study: ``{"answered": n, "skips": k}`` of its set (skips are not
        answers; the "made for you" A/B after it is left out: :func:`_of_study`)."""
        counts: dict[int, dict[str, int]] = {}
        with self._session() as session:
            for model in (StarRating, Comparison):
                skip = (Comparison.choice == "skip") if model is Comparison else sa.false()
                query = sa.select(model.rater_id, sa.func.count(), sa.func.sum(sa.case((skip, 1), else_=0)))
                rows = session.execute(_of_study(session, query, model, study_id).group_by(model.rater_id))
                for rater_id, total, skips in rows:
                    entry = counts.setdefault(rater_id, {"answered": 0, "skips": 0})
                    entry["answered"] += int(total) - int(skips or 0)
                    entry["skips"] += int(skips or 0)
        return counts

    def rater_history(self, rater_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """The rater's own submissions, newest first (what the app shows them; nobody else's):
        at most ``limit`` rows, of the :data:`EXPORT_COLUMNS` (without the melodies' tokens)."""
        check_id(rater_id, "rater id")
        queries = []
        for model in (StarRating, Comparison):
            query = sa.select(model).where(model.rater_id == rater_id)
            if limit >= 0:  # each kind's newest ``limit`` hold the newest ``limit`` of both
                query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
            queries.append(query)
        with self._session() as session:
            rows = _answer_rows(session, *(list(session.scalars(q)) for q in queries), include_tokens=False)
        rows.sort(key=_export_order, reverse=True)
        return rows[:limit]

    def ratings(self, tags: Sequence[str] | None = None) -> list[RatingRecord]:
        """Every star rating (of melodies in ``tags``, if given), oldest first."""
        query = sa.select(StarRating).order_by(StarRating.id)
        if tags:
            query = query.where(StarRating.melody_id.in_(_tagged(tags)))
        with self._session() as session:
            return [_rating_record(r, False) for r in session.scalars(query)]

    def comparisons(self, tags: Sequence[str] | None = None) -> list[ComparisonRecord]:
        """Every comparison (both melodies in ``tags``, if given), oldest first."""
        query = sa.select(Comparison).order_by(Comparison.id)
        if tags:
            query = query.where(Comparison.melody_a_id.in_(_tagged(tags)),
                                Comparison.melody_b_id.in_(_tagged(tags)))
        with self._session() as session:
            return [_comparison_record(r, False) for r in session.scalars(query)]

    # --------------------------------------------------------------- export
    def export_rows(self, tags: Sequence[str] | None = None, rater_names: Sequence[str] | None = None,
                    rater_ids: Sequence[int] | None = None, include_tokens: bool = True
                    ) -> list[dict[str, Any]]:
        """Every star rating and comparison with its melody (or melodies) and rater,
        oldest first, as flat dicts with the keys of :data:`EXPORT_COLUMNS`.
        ``tags`` keeps rows where a rated melody has one of the tags; ``rater_names`` and
        ``rater_ids`` (either may match) keep the rows of those raters."""
        star_query, pair_query = sa.select(StarRating), sa.select(Comparison)
        if rater_names is not None or rater_ids is not None:
            star_query = star_query.where(_of_raters(StarRating, rater_names, rater_ids))
            pair_query = pair_query.where(_of_raters(Comparison, rater_names, rater_ids))
        if tags:
            star_query = star_query.where(StarRating.melody_id.in_(_tagged(tags)))
            pair_query = pair_query.where(sa.or_(Comparison.melody_a_id.in_(_tagged(tags)),
                                                 Comparison.melody_b_id.in_(_tagged(tags))))
        with self._session() as session:
            rows = _answer_rows(session, list(session.scalars(star_query)), list(session.scalars(pair_query)),
                                include_tokens)
        rows.sort(key=_export_order)
        return rows


def _tagged(tags: Sequence[str]) -> sa.Select:
    """The ids of the melodies of ``tags`` (a subquery)."""
    return sa.select(StoredMelody.id).where(StoredMelody.tag.in_(list(tags)))


def _of_raters(model, rater_names: Sequence[str] | None, rater_ids: Sequence[int] | None) -> Any:
    """Answers of the raters called one of ``rater_names`` (exactly) or with one of ``rater_ids``."""
    wanted = []
    if rater_names:
        wanted.append(model.rater_id.in_(sa.select(Rater.id).where(Rater.name.in_(list(rater_names)))))
    if rater_ids:
        wanted.append(model.rater_id.in_(list(rater_ids)))
    return sa.or_(*wanted) if wanted else sa.false()


def _export_order(row: dict[str, Any]) -> tuple:
    return row["created_at"], row["kind"], row["id"]


def _chunks(ids: Iterable[int], size: int = 500) -> Iterator[list[int]]:
    """Ids in sorted groups small enough for one ``IN (...)`` on any database."""
    ids = sorted(ids)
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _answer_rows(session: Session, stars: Sequence[StarRating], pairs: Sequence[Comparison],
                 include_tokens: bool) -> list[dict[str, Any]]:
    """Export rows (unsorted) of these answers, loading only their raters, melodies and studies."""
    items = [*stars, *pairs]
    melody_ids = {s.melody_id for s in stars} | {p.melody_a_id for p in pairs} | {p.melody_b_id for p in pairs}
    tokens = StoredMelody.tokens if include_tokens else sa.null()
    melodies: dict[int, tuple] = {}
    raters: dict[int, tuple[str, str]] = {}
    study_names: dict[int, str] = {}
    for chunk in _chunks(melody_ids):
        melodies.update((row[0], tuple(row)) for row in session.execute(
            sa.select(StoredMelody.id, StoredMelody.tag, Model.name, StoredMelody.seed, tokens, StoredMelody.extra)
            .outerjoin(Model, StoredMelody.model_id == Model.id).where(StoredMelody.id.in_(chunk))))
    for chunk in _chunks({i.rater_id for i in items}):
        raters.update((i, (name, kind)) for i, name, kind in session.execute(
            sa.select(Rater.id, Rater.name, Rater.kind).where(Rater.id.in_(chunk))))
    for chunk in _chunks({i.study_id for i in items if i.study_id is not None}):
        study_names.update(session.execute(sa.select(Study.id, Study.name).where(Study.id.in_(chunk))).all())

    def melody_fields(prefix: str, melody_id: int | None) -> dict[str, Any]:
        if melody_id is None:
            return {f"{prefix}_{k}": None for k in ("id", "tag", "model", "seed", "tokens", "metre", "key",
                                                   "pickup_steps")}
        row_id, tag, model_name, seed, melody_tokens, extra = melodies[melody_id]
        metre, key, pickup = stored_layout_text(extra)
        return {f"{prefix}_id": row_id, f"{prefix}_tag": tag, f"{prefix}_model": model_name,
                f"{prefix}_seed": seed,
                f"{prefix}_tokens": " ".join(map(str, melody_tokens)) if include_tokens else None,
                f"{prefix}_metre": metre, f"{prefix}_key": key, f"{prefix}_pickup_steps": pickup}

    rows: list[dict[str, Any]] = []
    for kind, answers in (("stars", stars), ("comparison", pairs)):
        for item in answers:
            first = item.melody_id if kind == "stars" else item.melody_a_id
            second = None if kind == "stars" else item.melody_b_id
            rater_name, rater_kind = raters[item.rater_id]
            row = {
                "kind": kind, "id": item.id, "client_id": item.client_id,
                "created_at": _iso(item.created_at), "rater": rater_name, "rater_kind": rater_kind,
                "session_id": item.session_id,
                "stars": item.stars if kind == "stars" else None,
                "choice": item.choice if kind == "comparison" else None,
                "shown_left": item.shown_left if kind == "comparison" else None,
                "is_repeat": bool(item.is_repeat), "listened_ms": item.listened_ms,
                "answer_ms": item.answer_ms, "study_id": item.study_id,
                "study": study_names.get(item.study_id),
            }
            row.update(melody_fields("melody", first))
            row.update(melody_fields("melody_b", second))
            rows.append(row)
    return rows


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite gives naive datetimes back; they were stored in UTC
        return value.isoformat(timespec="milliseconds") + "+00:00"
    return value.isoformat(timespec="milliseconds")


def _played(played_ms: Any) -> dict[str, int]:
    """Play times by screen label, checked: ``{label: milliseconds}``."""
    if played_ms is None:
        return {}
    if not isinstance(played_ms, dict):
        raise FeedbackError(f"play times {played_ms!r} must be a mapping of label to milliseconds")
    checked = {}
    for label, ms in played_ms.items():
        if not isinstance(label, str) or not 1 <= len(label) <= 16:
            raise FeedbackError(f"play time label {label!r} must be 1-16 characters")
        checked[label] = check_timing(ms, f"time played of {label}") or 0
    return checked


def _rating_record(row: StarRating, created: bool) -> RatingRecord:
    return RatingRecord(row.id, row.client_id, row.rater_id, row.melody_id, row.stars, row.session_id,
                        bool(row.is_repeat), row.listened_ms, row.answer_ms, row.created_at, created,
                        row.study_id)


def _comparison_record(row: Comparison, created: bool) -> ComparisonRecord:
    return ComparisonRecord(row.id, row.client_id, row.rater_id, row.melody_a_id, row.melody_b_id,
                            row.shown_left, row.choice, row.session_id, bool(row.is_repeat),
                            row.listened_ms, row.answer_ms, row.created_at, created, row.study_id)

