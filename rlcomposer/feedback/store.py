"""The rating store: every read and write of listener feedback goes through here.

:class:`FeedbackStore` wraps one database (see :mod:`rlcomposer.feedback.database`)
and offers the rows the app, the CLI and the simulated listeners read and write:
raters, models, the candidate pool of melodies, star ratings, pairwise
comparisons, per-rater history, lookups and the export rows. What the dashboard
computes from them (activity, agreement, self-consistency, win-rates) is
:mod:`rlcomposer.feedback.statistics`'s.

Every submission carries a ``client_id`` made by the client (a UUID made when
the item was shown). Submitting the same id again returns the row already
stored (``created=False``) instead of storing a second one; the same id with a
different answer is refused. Values are checked here with messages that name
the input, and again by the database's constraints.

Errors: :class:`FeedbackError` for bad input (nothing is stored);
:class:`~rlcomposer.feedback.database.DatabaseUnavailable` when the database is
down or locked (nothing is stored; the same call may simply be made again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback import database
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.schema import (
    CHOICES,
    CLIENT_ID_MAX,
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
from rlcomposer.music.keys import DEFAULT_KEY, Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.metre import parse_metre

_CLIENT_ID = re.compile(rf"^[A-Za-z0-9_.:-]{{8,{CLIENT_ID_MAX}}}$")
SIMULATED_PREFIX = "sim:"
MAX_NAME = 80
MAX_TAG = 100
MAX_TIMING_MS = 24 * 3600 * 1000


class FeedbackError(RLComposerError):
    """A rating, comparison, rater, tag or id that the store refuses; nothing was stored."""


def rater_name_key(name: str) -> str:
    """How rater names are matched: trimmed, one space between words, case-folded
    (``"keyboard kim "`` and ``"Keyboard  Kim"`` are the same rater)."""
    return " ".join(str(name).split()).casefold()[:MAX_NAME]


def token_digest(token: str) -> str:
    """SHA-256 (hex) of a rater's sign-in token: what the database keeps instead of the token."""
    return hashlib.sha256(str(token).encode("utf-8")).hexdigest()


class NameTaken(FeedbackError):
    """A person's rater name that is already someone's: it opens nothing without that rater's token."""


class InvalidToken(FeedbackError):
    """A sign-in token that belongs to no rater (mistyped, tampered with, or from another database)."""


def new_client_id() -> str:
    """A fresh submission id (what a client makes when it shows an item)."""
    return uuid.uuid4().hex


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class RaterInfo:
    id: int
    name: str
    kind: str
    consented: bool


@dataclass(frozen=True)
class MelodyRecord:
    """A melody of the pool with its provenance."""

    id: int
    melody: Melody
    tag: str
    model: str | None
    seed: int | None
    sample_index: int | None
    experiment: str | None
    created_at: datetime


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


@dataclass(frozen=True)
class PoolAddResult:
    """What :meth:`FeedbackStore.add_melodies` did: ids in input order."""

    ids: list[int]
    added: int
    existing: int
    model_id: int | None


@dataclass(frozen=True)
class PoolMelody:
    """A melody of the pool with the count and mean of its star ratings."""

    id: int
    tag: str
    model: str | None
    seed: int | None
    num_ratings: int
    mean_stars: float | None


EXPORT_COLUMNS = (
    "kind", "id", "client_id", "created_at", "rater", "rater_kind", "session_id",
    "stars", "choice", "shown_left", "is_repeat", "listened_ms", "answer_ms",
    "melody_id", "melody_tag", "melody_model", "melody_seed", "melody_tokens",
    "melody_b_id", "melody_b_tag", "melody_b_model", "melody_b_seed", "melody_b_tokens", "study_id", "study",
)


# -------------------------------------------------------------------- checks
def _check_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise FeedbackError(
            f"submission id {client_id!r} is malformed (8-{CLIENT_ID_MAX} letters, digits, '_.:-')")
    return client_id


def _check_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FeedbackError(f"{what} {value!r} is not a valid id (a positive integer)")
    return value


def _check_timing(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_TIMING_MS:
        raise FeedbackError(f"{what} {value!r} must be between 0 and {MAX_TIMING_MS} milliseconds")
    return int(value)


def _check_stars(stars: Any) -> int:
    if isinstance(stars, bool) or not isinstance(stars, int) or not MIN_STARS <= stars <= MAX_STARS:
        raise FeedbackError(f"rating {stars!r} is outside {MIN_STARS}-{MAX_STARS} stars")
    return stars


def check_tag(tag: Any) -> str:
    """A pool tag: 1-100 characters, no leading/trailing spaces, no control characters."""
    if not isinstance(tag, str) or not tag.strip() or tag != tag.strip() or len(tag) > MAX_TAG \
            or any(ord(c) < 32 for c in tag):
        raise FeedbackError(f"tag {tag!r} must be 1-{MAX_TAG} printable characters")
    return tag


def check_rater_name(name: Any, kind: str = "person") -> str:
    """A rater name: 1-80 printable characters; ``sim:`` names are for simulated listeners."""
    if not isinstance(name, str):
        raise FeedbackError(f"rater name {name!r} must be text")
    stripped = " ".join(name.split())
    if not stripped or len(stripped) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise FeedbackError(f"rater name {name!r} must be 1-{MAX_NAME} printable characters")
    if kind == "person" and stripped.lower().startswith(SIMULATED_PREFIX):
        raise FeedbackError(f"rater name {name!r}: names starting with '{SIMULATED_PREFIX}' are for simulated listeners")
    if kind == "simulated" and not stripped.startswith(SIMULATED_PREFIX):
        raise FeedbackError(f"simulated rater name {name!r} must start with '{SIMULATED_PREFIX}'")
    if kind not in ("person", "simulated"):
        raise FeedbackError(f"rater kind {kind!r} must be person or simulated")
    return stripped


def tokens_sha1(tokens: Sequence[int]) -> str:
    """The identity of a melody's tokens within a tag."""
    return hashlib.sha1(json.dumps([int(t) for t in tokens]).encode()).hexdigest()


# --------------------------------------------------------------------- store
class FeedbackStore:
    """Listener feedback in one database (SQLite or PostgreSQL).

    Build it with :func:`open_store`, which also runs the migrations.
    """

    def __init__(self, url: str):
        self.url = database.normalise_url(url)
        self.engine = database.get_engine(self.url)
        self._write_engine = self.engine.execution_options(rlc_write=True)
        self.dialect = self.engine.dialect.name
        self._sqlite_file = database.sqlite_path(self.url)

    # ------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return f"FeedbackStore({database.display_url(self.url)!r})"

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        if self._sqlite_file is not None and not self._sqlite_file.exists():
            # SQLite would make a new, empty file and answers would go into the void
            raise DatabaseUnavailable(f"database {database.display_url(self.url)} is unavailable "
                                      f"(the file {self._sqlite_file.name} has gone: it was moved or deleted)")
        try:
            with Session(self._write_engine if write else self.engine, expire_on_commit=False) as session:
                yield session
                if write:
                    session.commit()
        except (sa.exc.IntegrityError, sa.exc.DataError) as error:
            raise FeedbackError(f"the database refused the value ({_first_line(error)}); nothing stored") from None
        except sa.exc.SQLAlchemyError as error:
            if database.is_unavailable(error):
                raise database.unavailable(self.url, error) from None
            raise database.DatabaseError(f"database {database.display_url(self.url)} cannot be used "
                                         f"({_first_line(error)})") from None

    def _insert(self, model, **values) -> sa.Insert:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(model).values(**values)

    # -------------------------------------------------------------- raters
    def sign_in(self, name: str, kind: str = "person") -> RaterInfo:
        """The rater called ``name`` (matched by :func:`rater_name_key`), created on first
        sign-in. For scripts, the CLI and simulated listeners; the app signs people in with
        :meth:`register_rater` and :meth:`sign_in_with_token` instead, so that a name alone
        never opens someone else's history."""
        name = check_rater_name(name, kind)
        key = rater_name_key(name)
        with self._session(write=True) as session:
            session.execute(self._insert(Rater, name=name, name_key=key, kind=kind, created_at=utcnow())
                            .on_conflict_do_nothing())
            rater = session.scalars(sa.select(Rater).where(Rater.name_key == key)).one()
            if rater.kind != kind:
                raise FeedbackError(f"rater name {name!r} belongs to a {rater.kind} rater")
            return _rater_info(rater)

    def register_rater(self, name: str) -> tuple[RaterInfo, str]:
        """A new person called ``name`` and their secret sign-in token (returned once; only its
        hash is stored). Raises :class:`NameTaken` when the name (trimmed, case-folded) is
        already a rater's: that rater signs back in with their token, nobody else with the name."""
        name = check_rater_name(name, "person")
        key = rater_name_key(name)
        token = secrets.token_urlsafe(24)
        with self._session(write=True) as session:
            result = session.execute(
                self._insert(Rater, name=name, name_key=key, kind="person", created_at=utcnow(),
                             token_sha256=token_digest(token))
                .on_conflict_do_nothing().returning(Rater.id))
            if result.first() is None:
                raise NameTaken(f"the rater name {name!r} is already taken: if it is yours, open your "
                                "personal link (it signs you back in); otherwise choose another name")
            rater = session.scalars(sa.select(Rater).where(Rater.name_key == key)).one()
            return _rater_info(rater), token

    def sign_in_with_token(self, token: str) -> RaterInfo:
        """The rater whose secret token this is; :class:`InvalidToken` for any other text."""
        if not isinstance(token, str) or not 16 <= len(token) <= 200:
            raise InvalidToken("this sign-in link is not valid (the token is malformed); sign in with a new name")
        digest = token_digest(token)
        with self._session() as session:
            rater = session.scalars(sa.select(Rater).where(Rater.token_sha256 == digest)).first()
            if rater is None or not hmac.compare_digest(rater.token_sha256 or "", digest):
                raise InvalidToken("this sign-in link is not valid (no rater has this token); "
                                   "sign in with a new name")
            return _rater_info(rater)

    def new_sign_in_token(self, name: str) -> tuple[RaterInfo, str]:
        """A new secret sign-in token for the person called ``name`` (a lost link): the old
        token stops working at once. :class:`FeedbackError` naming the rater when there is none."""
        if not isinstance(name, str) or not name.strip():
            raise FeedbackError(f"rater name {name!r} must be text")
        token = secrets.token_urlsafe(24)
        with self._session(write=True) as session:
            rater = session.scalars(sa.select(Rater).where(Rater.name_key == rater_name_key(name))).first()
            if rater is None:
                raise FeedbackError(f"there is no rater called {name!r}")
            if rater.kind != "person":
                raise FeedbackError(f"rater {rater.name!r} is a simulated listener: it has no sign-in link")
            rater.token_sha256 = token_digest(token)
            return _rater_info(rater), token

    def get_rater(self, rater_id: int) -> RaterInfo:
        _check_id(rater_id, "rater id")
        with self._session() as session:
            rater = session.get(Rater, rater_id)
            if rater is None:
                raise FeedbackError(f"rater id {rater_id} is unknown")
            return _rater_info(rater)

    def find_rater(self, name: str) -> RaterInfo | None:
        with self._session() as session:
            rater = session.scalars(sa.select(Rater).where(Rater.name_key == rater_name_key(name))).first()
            return None if rater is None else _rater_info(rater)

    def record_consent(self, rater_id: int) -> RaterInfo:
        """Mark that the rater agreed to the consent text (first time only)."""
        _check_id(rater_id, "rater id")
        with self._session(write=True) as session:
            rater = session.get(Rater, rater_id)
            if rater is None:
                raise FeedbackError(f"rater id {rater_id} is unknown")
            if rater.consented_at is None:
                rater.consented_at = utcnow()
            return _rater_info(rater)

    def start_session(self, rater_id: int, client: str | None = None, study_id: int | None = None) -> int:
        """A new rating session of ``rater_id`` (in study ``study_id``, if given); returns its id."""
        self.get_rater(rater_id)
        with self._session(write=True) as session:
            row = RatingSession(rater_id=rater_id, client=(client or None) and str(client)[:200],
                                study_id=study_id, started_at=utcnow())
            session.add(row)
            session.flush()
            return row.id

    def raters(self) -> list[RaterInfo]:
        with self._session() as session:
            return [_rater_info(r) for r in session.scalars(sa.select(Rater).order_by(Rater.id))]

    # --------------------------------------------------------------- models
    def register_model(self, name: str, kind: str = "prior", config: dict[str, Any] | None = None,
                       path: str | None = None) -> int:
        """The id of model ``name``, stored (with its config) the first time."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise FeedbackError(f"model name {name!r} must be 1-200 characters")
        config = json.loads(json.dumps(config or {}, default=str))
        with self._session(write=True) as session:
            session.execute(self._insert(Model, name=name, kind=kind, config=config, path=path,
                                         created_at=utcnow())
                            .on_conflict_do_nothing(index_elements=["name"]))
            return session.scalars(sa.select(Model.id).where(Model.name == name)).one()

    def models(self) -> list[dict[str, Any]]:
        with self._session() as session:
            return [{"id": m.id, "name": m.name, "kind": m.kind, "path": m.path, "config": m.config}
                    for m in session.scalars(sa.select(Model).order_by(Model.id))]

    # ---------------------------------------------------------------- pool
    def add_melodies(self, melodies: Sequence[Melody], tag: str, model: str | None = None,
                     model_kind: str = "prior", model_config: dict[str, Any] | None = None,
                     model_path: str | None = None, experiment: str | None = None) -> PoolAddResult:
        """Put melodies in the rating pool under ``tag``. A melody already in the
        tag is not added twice (its existing id is returned)."""
        check_tag(tag)
        if experiment is not None and (not isinstance(experiment, str) or len(experiment) > 200):
            raise FeedbackError(f"experiment {experiment!r} must be at most 200 characters")
        melodies = list(melodies)
        if not all(isinstance(m, Melody) for m in melodies):
            raise FeedbackError("add_melodies takes Melody objects")
        model_id = self.register_model(model, model_kind, model_config, model_path) if model else None
        ids: list[int] = []
        added = 0
        with self._session(write=True) as session:
            for melody in melodies:
                tokens = [int(t) for t in melody.tokens]
                digest = tokens_sha1(tokens)
                meta = dict(melody.metadata)
                if (melody.metre.name, melody.key.name) != ("4/4", "C major"):  # how to bar and spell it
                    meta.update(metre=melody.metre.name,
                                key={"tonic": melody.key.tonic, "mode": melody.key.mode})
                seed = meta.pop("seed", None)
                index = meta.pop("index", None)
                result = session.execute(
                    self._insert(StoredMelody, tokens=tokens, tokens_sha1=digest, num_steps=len(tokens),
                                 model_id=model_id, seed=seed if isinstance(seed, int) else None,
                                 sample_index=index if isinstance(index, int) else None, tag=tag,
                                 experiment=experiment,
                                 extra=json.loads(json.dumps(meta, default=str)), created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["tag", "tokens_sha1"])
                    .returning(StoredMelody.id))
                added += result.first() is not None
                ids.append(session.scalars(sa.select(StoredMelody.id).where(
                    StoredMelody.tag == tag, StoredMelody.tokens_sha1 == digest)).one())
        return PoolAddResult(ids=ids, added=added, existing=len(melodies) - added, model_id=model_id)

    def get_melody(self, melody_id: int) -> MelodyRecord:
        _check_id(melody_id, "melody id")
        with self._session() as session:
            row = session.execute(
                sa.select(StoredMelody, Model.name).outerjoin(Model, StoredMelody.model_id == Model.id)
                .where(StoredMelody.id == melody_id)).first()
            if row is None:
                raise FeedbackError(f"melody id {melody_id} is unknown")
            return _melody_record(*row)

    def get_melodies(self, melody_ids: Iterable[int]) -> dict[int, MelodyRecord]:
        ids = sorted({_check_id(i, "melody id") for i in melody_ids})
        with self._session() as session:
            rows = session.execute(
                sa.select(StoredMelody, Model.name).outerjoin(Model, StoredMelody.model_id == Model.id)
                .where(StoredMelody.id.in_(ids))).all()
        found = {row[0].id: _melody_record(*row) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise FeedbackError(f"melody id {missing[0]} is unknown")
        return found

    def melody_ids(self, tags: Sequence[str] | None = None) -> list[int]:
        """Ids of the pool's melodies (of ``tags`` only, if given), oldest first."""
        query = sa.select(StoredMelody.id).order_by(StoredMelody.id)
        if tags:
            query = query.where(StoredMelody.tag.in_(list(tags)))
        with self._session() as session:
            return list(session.scalars(query))

    def melody_shapes(self, tags: Sequence[str] | None = None) -> dict[int, tuple[str, int]]:
        """``(metre, steps)`` of the pool's melodies (of ``tags`` only), by id: a comparison is
        only ever between two melodies of the same metre and length."""
        query = sa.select(StoredMelody.id, StoredMelody.num_steps, StoredMelody.extra)
        if tags:
            query = query.where(StoredMelody.tag.in_(list(tags)))
        with self._session() as session:
            return {i: (str((extra or {}).get("metre", "4/4")), int(n))
                    for i, n, extra in session.execute(query)}

    def tags(self) -> list[tuple[str, int]]:
        """Each tag with its number of melodies."""
        with self._session() as session:
            return [(t, n) for t, n in session.execute(
                sa.select(StoredMelody.tag, sa.func.count()).group_by(StoredMelody.tag).order_by(StoredMelody.tag))]

    def melody_tags(self) -> dict[int, str]:
        """The tag of every melody of the pool, by melody id."""
        with self._session() as session:
            return _tag_of(session)

    def pool_melodies(self, tag: str | None = None) -> list[PoolMelody]:
        """The pool's melodies (of ``tag`` only, if given), oldest first, each with
        its number of star ratings and their mean."""
        with self._session() as session:
            query = sa.select(StoredMelody.id, StoredMelody.tag, Model.name, StoredMelody.seed).outerjoin(
                Model, StoredMelody.model_id == Model.id).order_by(StoredMelody.id)
            if tag:
                query = query.where(StoredMelody.tag == tag)
            base = session.execute(query).all()
            star_stats = {mid: (n, mean) for mid, n, mean in session.execute(
                sa.select(StarRating.melody_id, sa.func.count(), sa.func.avg(StarRating.stars))
                .group_by(StarRating.melody_id))}
        rows = []
        for mid, mtag, model_name, seed in base:
            n, mean = star_stats.get(mid, (0, None))
            rows.append(PoolMelody(mid, mtag, model_name, seed, n, None if mean is None else float(mean)))
        return rows

    # -------------------------------------------------------------- submits
    def _existing_rater_and_melodies(self, session: Session, rater_id: int, melody_ids: Sequence[int],
                                     session_id: int | None, study_id: int | None = None) -> None:
        if session.get(Rater, rater_id) is None:
            raise FeedbackError(f"rater id {rater_id} is unknown")
        for melody_id in melody_ids:
            if session.get(StoredMelody, melody_id) is None:
                raise FeedbackError(f"melody id {melody_id} is unknown")
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
            study_id=None if study_id is None else _check_id(study_id, "study id"),
            client_id=_check_client_id(client_id), rater_id=_check_id(rater_id, "rater id"),
            melody_id=_check_id(melody_id, "melody id"), stars=_check_stars(stars),
            session_id=None if session_id is None else _check_id(session_id, "session id"),
            is_repeat=bool(is_repeat), listened_ms=_check_timing(listened_ms, "time listened"),
            answer_ms=_check_timing(answer_ms, "time to answer"))
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
        _check_id(melody_a_id, "melody id")
        _check_id(melody_b_id, "melody id")
        if melody_a_id == melody_b_id:
            raise FeedbackError(f"a comparison needs two different melodies, got {melody_a_id} twice")
        values = dict(
            study_id=None if study_id is None else _check_id(study_id, "study id"),
            client_id=_check_client_id(client_id), rater_id=_check_id(rater_id, "rater id"),
            melody_a_id=melody_a_id, melody_b_id=melody_b_id, choice=choice, shown_left=shown_left,
            session_id=None if session_id is None else _check_id(session_id, "session id"),
            is_repeat=bool(is_repeat), listened_ms=_check_timing(listened_ms, "time listened"),
            answer_ms=_check_timing(answer_ms, "time to answer"))
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
        of a rater (in one session and/or one study, if given); ``skips`` are skipped pairs."""
        counts = {}
        with self._session() as session:
            for key, model in (("stars", StarRating), ("comparisons", Comparison), ("skips", Comparison)):
                query = sa.select(sa.func.count()).select_from(model).where(model.rater_id == rater_id)
                if session_id is not None:
                    query = query.where(model.session_id == session_id)
                if study_id is not None:
                    query = query.where(model.study_id == study_id)
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
        _check_client_id(client_id)
        if kind not in ("single", "pair"):
            raise FeedbackError(f"item kind {kind!r} must be single or pair")
        ids = [_check_id(i, "melody id") for i in melody_ids]
        values = dict(client_id=client_id, kind=kind, melody_ids=ids, shown_left=shown_left,
                      is_repeat=bool(is_repeat), played_ms=_played(played_ms), shown_at=utcnow())
        with self._session(write=True) as session:
            session.execute(self._insert(CurrentItem, rater_id=_check_id(rater_id, "rater id"),
                                         study_id=_check_id(study_id, "study id"), **values)
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
        _check_id(rater_id, "rater id")
        with self._session(write=True) as session:
            for melody_id in melody_ids:
                session.execute(self._insert(HeardMelody, rater_id=rater_id,
                                             melody_id=_check_id(melody_id, "melody id"), heard_at=utcnow())
                                .on_conflict_do_nothing())

    def heard_melody_ids(self, rater_id: int) -> set[int]:
        """The melodies the rater has heard in full."""
        with self._session() as session:
            return set(session.scalars(sa.select(HeardMelody.melody_id).where(HeardMelody.rater_id == rater_id)))

    # -------------------------------------------------------------- studies
    def create_study(self, name: str, **settings: Any) -> int:
        """Store a new study (see :class:`rlcomposer.feedback.study.StudySpec` for the settings,
        checked there); its id. A name already used is refused."""
        if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 100:
            raise FeedbackError(f"study name {name!r} must be 1-100 characters without surrounding spaces")
        with self._session(write=True) as session:
            result = session.execute(self._insert(Study, name=name, created_at=utcnow(), status="open",
                                                  **settings).on_conflict_do_nothing().returning(Study.id))
            row = result.first()
            if row is None:
                raise FeedbackError(f"a study called {name!r} exists already")
            return row[0]

    def get_study(self, name: str) -> dict[str, Any] | None:
        """The study called ``name`` as a dict of its columns, or None."""
        with self._session() as session:
            study = session.scalars(sa.select(Study).where(Study.name == str(name))).first()
            return None if study is None else _study_dict(study)

    def studies(self) -> list[dict[str, Any]]:
        """Every study, oldest first."""
        with self._session() as session:
            return [_study_dict(s) for s in session.scalars(sa.select(Study).order_by(Study.id))]

    def update_study(self, name: str, **settings: Any) -> dict[str, Any]:
        """Change a study's settings (the default study follows the app's settings)."""
        with self._session(write=True) as session:
            study = session.scalars(sa.select(Study).where(Study.name == str(name))).first()
            if study is None:
                raise FeedbackError(f"no study is called {name!r}")
            for key, value in settings.items():
                setattr(study, key, value)
            return _study_dict(study)

    def set_study_status(self, name: str, status: str) -> dict[str, Any]:
        """Open or close a study (a closed study takes no answers)."""
        if status not in ("open", "closed"):
            raise FeedbackError(f"study status {status!r} must be open or closed")
        with self._session(write=True) as session:
            study = session.scalars(sa.select(Study).where(Study.name == str(name))).first()
            if study is None:
                raise FeedbackError(f"no study is called {name!r}")
            study.status = status
            study.closed_at = utcnow() if status == "closed" else None
            return _study_dict(study)

    def study_answer_counts(self, study_id: int) -> dict[int, dict[str, int]]:
        """Per rater of a study: ``{"answered": n, "skips": k}`` (skips are not answers)."""
        counts: dict[int, dict[str, int]] = {}
        with self._session() as session:
            for model in (StarRating, Comparison):
                skip = (Comparison.choice == "skip") if model is Comparison else sa.false()
                rows = session.execute(
                    sa.select(model.rater_id, sa.func.count(), sa.func.sum(sa.case((skip, 1), else_=0)))
                    .where(model.study_id == study_id).group_by(model.rater_id))
                for rater_id, total, skips in rows:
                    entry = counts.setdefault(rater_id, {"answered": 0, "skips": 0})
                    entry["answered"] += int(total) - int(skips or 0)
                    entry["skips"] += int(skips or 0)
        return counts

    def rater_history(self, rater_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """The rater's own submissions, newest first (what the app shows them; nobody else's)."""
        _check_id(rater_id, "rater id")
        return [row for row in self.export_rows(rater_ids=[rater_id], include_tokens=False)][::-1][:limit]

    def ratings(self, tags: Sequence[str] | None = None) -> list[RatingRecord]:
        """Every star rating (of melodies in ``tags``, if given), oldest first."""
        query = sa.select(StarRating).order_by(StarRating.id)
        if tags:
            query = query.join(StoredMelody, StarRating.melody_id == StoredMelody.id).where(
                StoredMelody.tag.in_(list(tags)))
        with self._session() as session:
            return [_rating_record(r, False) for r in session.scalars(query)]

    def comparisons(self, tags: Sequence[str] | None = None) -> list[ComparisonRecord]:
        """Every comparison (both melodies in ``tags``, if given), oldest first."""
        with self._session() as session:
            rows = [_comparison_record(r, False) for r in
                    session.scalars(sa.select(Comparison).order_by(Comparison.id))]
            if tags:
                tag_of = _tag_of(session)
                rows = [r for r in rows if tag_of[r.melody_a_id] in tags and tag_of[r.melody_b_id] in tags]
            return rows

    # --------------------------------------------------------------- export
    def export_rows(self, tags: Sequence[str] | None = None, rater_names: Sequence[str] | None = None,
                    rater_ids: Sequence[int] | None = None, include_tokens: bool = True
                    ) -> list[dict[str, Any]]:
        """Every star rating and comparison with its melody (or melodies) and rater,
        oldest first, as flat dicts with the keys of :data:`EXPORT_COLUMNS`.
        ``tags`` keeps rows where a rated melody has one of the tags."""
        with self._session() as session:
            raters = {r.id: r for r in session.scalars(sa.select(Rater))}
            melodies = {m.id: (m, name) for m, name in session.execute(
                sa.select(StoredMelody, Model.name).outerjoin(Model, StoredMelody.model_id == Model.id))}
            study_names = dict(session.execute(sa.select(Study.id, Study.name)).all())
            stars = list(session.scalars(sa.select(StarRating)))
            pairs = list(session.scalars(sa.select(Comparison)))
        wanted_raters = None
        if rater_names is not None or rater_ids is not None:
            wanted_raters = {r.id for r in raters.values()
                             if (rater_names and r.name in rater_names) or (rater_ids and r.id in rater_ids)}

        def melody_fields(prefix: str, melody_id: int | None) -> dict[str, Any]:
            if melody_id is None:
                return {f"{prefix}_{k}": None for k in ("id", "tag", "model", "seed", "tokens")}
            row, model_name = melodies[melody_id]
            return {f"{prefix}_id": row.id, f"{prefix}_tag": row.tag, f"{prefix}_model": model_name,
                    f"{prefix}_seed": row.seed,
                    f"{prefix}_tokens": " ".join(map(str, row.tokens)) if include_tokens else None}

        rows: list[dict[str, Any]] = []
        for kind, items in (("stars", stars), ("comparison", pairs)):
            for item in items:
                if wanted_raters is not None and item.rater_id not in wanted_raters:
                    continue
                first = item.melody_id if kind == "stars" else item.melody_a_id
                second = None if kind == "stars" else item.melody_b_id
                if tags and melodies[first][0].tag not in tags and (
                        second is None or melodies[second][0].tag not in tags):
                    continue
                rater = raters[item.rater_id]
                row = {
                    "kind": kind, "id": item.id, "client_id": item.client_id,
                    "created_at": _iso(item.created_at), "rater": rater.name, "rater_kind": rater.kind,
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
        rows.sort(key=lambda r: (r["created_at"], r["kind"], r["id"]))
        return rows

    # --------------------------------------------------------------- counts
    def counts(self) -> dict[str, int]:
        """How many raters, melodies, star ratings and comparisons are stored."""
        with self._session() as session:
            return {name: session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
                    for name, model in (("raters", Rater), ("melodies", StoredMelody),
                                        ("ratings", StarRating), ("comparisons", Comparison))}


def open_store(url: str, migrate: bool = True) -> FeedbackStore:
    """A :class:`FeedbackStore` on ``url``, migrated to the newest schema first
    (once per process) unless ``migrate`` is False."""
    try:
        if migrate:
            database.ensure_migrated(url)
        return FeedbackStore(url)
    except sa.exc.SQLAlchemyError as error:  # e.g. a file that is not a SQLite database
        raise database.DatabaseError(f"database {database.display_url(url)} cannot be used "
                                     f"({_first_line(error)})") from None


# ------------------------------------------------------------------ helpers
def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite gives naive datetimes back; they were stored in UTC
        return value.isoformat(timespec="milliseconds") + "+00:00"
    return value.isoformat(timespec="milliseconds")


def _tag_of(session: Session) -> dict[int, str]:
    return dict(session.execute(sa.select(StoredMelody.id, StoredMelody.tag)).all())


def _study_dict(study: Study) -> dict[str, Any]:
    return {column.name: getattr(study, column.name) for column in Study.__table__.columns}


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
        checked[label] = _check_timing(ms, f"time played of {label}") or 0
    return checked


def _rater_info(rater: Rater) -> RaterInfo:
    return RaterInfo(rater.id, rater.name, rater.kind, rater.consented_at is not None)


def _melody_record(row: StoredMelody, model_name: str | None) -> MelodyRecord:
    metadata = dict(row.extra or {})
    metadata.update(tag=row.tag, melody_id=row.id)
    if model_name:
        metadata["model"] = model_name
    if row.seed is not None:
        metadata["seed"] = row.seed
    metre, key = metadata.pop("metre", "4/4"), metadata.pop("key", None)
    key = Key(key.get("tonic", "C"), key.get("mode", "major")) if isinstance(key, dict) else DEFAULT_KEY
    return MelodyRecord(row.id, Melody(row.tokens, metadata, parse_metre(metre), key), row.tag,
                        model_name, row.seed,
                        row.sample_index, row.experiment, row.created_at)


def _rating_record(row: StarRating, created: bool) -> RatingRecord:
    return RatingRecord(row.id, row.client_id, row.rater_id, row.melody_id, row.stars, row.session_id,
                        bool(row.is_repeat), row.listened_ms, row.answer_ms, row.created_at, created,
                        row.study_id)


def _comparison_record(row: Comparison, created: bool) -> ComparisonRecord:
    return ComparisonRecord(row.id, row.client_id, row.rater_id, row.melody_a_id, row.melody_b_id,
                            row.shown_left, row.choice, row.session_id, bool(row.is_repeat),
                            row.listened_ms, row.answer_ms, row.created_at, created, row.study_id)


__all__ = [
    "ComparisonRecord", "DatabaseUnavailable", "EXPORT_COLUMNS", "FeedbackError", "FeedbackStore",
    "InvalidToken", "MelodyRecord", "NameTaken", "PoolAddResult", "PoolMelody", "RaterInfo", "RatingRecord", "check_rater_name",
    "check_tag", "new_client_id", "open_store", "rater_name_key", "token_digest", "tokens_sha1",
]
