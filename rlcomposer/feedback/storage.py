"""The store's plumbing: one database, a session that turns database errors into the store's
errors, and the input checks every part of the store shares.

:class:`StoreBase` is what :class:`~rlcomposer.feedback.store.FeedbackStore`'s parts
(raters, pool, answers, studies) build on. Errors: :class:`FeedbackError` for bad input
(nothing is stored); :class:`~rlcomposer.feedback.database.DatabaseUnavailable` when the
database is down or locked (nothing is stored; the same call may simply be made again).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback import database
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.schema import CLIENT_ID_MAX

_CLIENT_ID = re.compile(rf"^[A-Za-z0-9_.:-]{{8,{CLIENT_ID_MAX}}}$")
MAX_TIMING_MS = 24 * 3600 * 1000


class FeedbackError(RLComposerError):
    """A rating, comparison, rater, tag or id that the store refuses; nothing was stored."""


def check_client_id(client_id: Any) -> str:
    """A submission id as a client makes it (8-64 letters, digits and ``_.:-``)."""
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise FeedbackError(
            f"submission id {client_id!r} is malformed (8-{CLIENT_ID_MAX} letters, digits, '_.:-')")
    return client_id


def check_id(value: Any, what: str) -> int:
    """A row id: a positive integer (``what`` names it in the message)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FeedbackError(f"{what} {value!r} is not a valid id (a positive integer)")
    return value


def check_timing(value: Any, what: str) -> int | None:
    """Milliseconds (0 to a day) or None, as a whole number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_TIMING_MS:
        raise FeedbackError(f"{what} {value!r} must be between 0 and {MAX_TIMING_MS} milliseconds")
    return int(value)


class StoreBase:
    """One database (SQLite or PostgreSQL) and the sessions the store's parts read and write in."""

    def __init__(self, url: str):
        self.url = database.normalise_url(url)
        self.engine = database.get_engine(self.url)
        self._write_engine = self.engine.execution_options(rlc_write=True)
        self.dialect = self.engine.dialect.name
        self._sqlite_file = database.sqlite_path(self.url)

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
            raise FeedbackError(f"the database refused the value ({first_line(error)}); nothing stored") from None
        except sa.exc.SQLAlchemyError as error:
            if database.is_unavailable(error):
                raise database.unavailable(self.url, error) from None
            raise database.DatabaseError(f"database {database.display_url(self.url)} cannot be used "
                                         f"({first_line(error)})") from None

    def _insert(self, model, **values) -> sa.Insert:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(model).values(**values)


def first_line(error: BaseException) -> str:
    """The first line of a database error's message (what the store's errors quote)."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__

