"""Raters: sign-in by name (scripts, simulated listeners) or by secret token (people in the
app), personal links (a new token when a link is lost), consent and rating sessions.

A person's token is returned once; the database keeps only its SHA-256 (:func:`token_digest`).
Names are matched trimmed and case-folded (:func:`rater_name_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rlcomposer.feedback.pool import PERSONAL_PREFIX
from rlcomposer.feedback.schema import (
    Comparison,
    CurrentItem,
    HeardMelody,
    Model,
    Rater,
    RatingSession,
    StarRating,
    StoredMelody,
    utcnow,
)
from rlcomposer.feedback.storage import FeedbackError, StoreBase, check_id

SIMULATED_PREFIX = "sim:"
MAX_NAME = 80


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


@dataclass(frozen=True)
class RaterInfo:
    id: int
    name: str
    kind: str
    consented: bool


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


class RaterStore(StoreBase):
    """The raters of the store."""

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
        check_id(rater_id, "rater id")
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
        check_id(rater_id, "rater id")
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

    def forget_rater(self, name: str) -> dict[str, Any]:
        """Delete the rater called ``name`` (matched by :func:`rater_name_key`) and everything of
        theirs, in one transaction: comparisons, star ratings, the item on their screen, the melodies
        they heard, their rating sessions, the melodies made for them (``personal_melodies``: the
        tags ``personal:<study>:<rater id>`` of every study, :func:`_forget_personal_melodies`), and
        the rater (with the token of their personal link). Returns how many rows of each were
        removed; :class:`FeedbackError` naming the raters when there is no such rater (nothing
        removed). The rest of the pool stays."""
        if not isinstance(name, str) or not name.strip():
            raise FeedbackError(f"rater name {name!r} must be text")
        with self._session(write=True) as session:
            rater = session.scalars(sa.select(Rater).where(Rater.name_key == rater_name_key(name))).first()
            if rater is None:
                known = [r for r in session.scalars(sa.select(Rater.name).order_by(Rater.id))]
                shown = ", ".join(known[:20]) + (f" (and {len(known) - 20} more)" if len(known) > 20 else "")
                raise FeedbackError(f"there is no rater called {name!r} (raters: {shown or 'none'})")
            removed: dict[str, Any] = {"rater": rater.name}
            for label, model in (("comparisons", Comparison), ("star_ratings", StarRating),
                                 ("current_items", CurrentItem), ("heard_melodies", HeardMelody),
                                 ("rating_sessions", RatingSession)):
                result = session.execute(sa.delete(model).where(model.rater_id == rater.id))
                removed[label] = int(result.rowcount or 0)
            removed["personal_melodies"] = _forget_personal_melodies(session, rater.id)
            removed["had_link"] = int(rater.token_sha256 is not None)
            session.delete(rater)
            return removed

    def raters(self) -> list[RaterInfo]:
        with self._session() as session:
            return [_rater_info(r) for r in session.scalars(sa.select(Rater).order_by(Rater.id))]

def _forget_personal_melodies(session: Session, rater_id: int) -> int:
    """Delete the melodies ``study personalise`` made for the rater (tags ``personal:<study>:<id>``,
    the id last), after their answers: with who heard them, and their models once those hold no
    melody. A melody another rater's answer is about (none, from the app) stays. How many went."""
    rows = session.execute(sa.select(StoredMelody.id, StoredMelody.tag, StoredMelody.model_id)
                           .where(StoredMelody.tag.startswith(PERSONAL_PREFIX, autoescape=True))).all()
    mine = {melody_id: model_id for melody_id, tag, model_id in rows
            if tag.count(":") >= 2 and tag.rsplit(":", 1)[1] == str(rater_id)}
    if not mine:
        return 0
    held = set()
    for column in (Comparison.melody_a_id, Comparison.melody_b_id, StarRating.melody_id):
        held |= set(session.scalars(sa.select(column).where(column.in_(list(mine)))))
    gone = [i for i in mine if i not in held]
    if gone:
        session.execute(sa.delete(HeardMelody).where(HeardMelody.melody_id.in_(gone)))
        session.execute(sa.delete(StoredMelody).where(StoredMelody.id.in_(gone)))
        models = {mine[i] for i in gone} - {None}
        if models:
            used = sa.select(StoredMelody.model_id).where(StoredMelody.model_id.is_not(None))
            session.execute(sa.delete(Model).where(Model.id.in_(list(models)), Model.id.not_in(used)))
    return len(gone)


def _rater_info(rater: Rater) -> RaterInfo:
    return RaterInfo(rater.id, rater.name, rater.kind, rater.consented_at is not None)

