"""The rating store: every read and write of listener feedback goes through here.

:class:`FeedbackStore` wraps one database (see :mod:`rlcomposer.feedback.database`)
and offers the rows the app, the CLI and the simulated listeners read and write. It is
made of one part per aggregate:

* :mod:`rlcomposer.feedback.raters` — raters: sign-in by name or token, personal links,
  consent, rating sessions;
* :mod:`rlcomposer.feedback.pool` — the pool: melodies by tag, with their models;
* :mod:`rlcomposer.feedback.answers` — star ratings and comparisons, the current item,
  heard melodies, per-rater history and the export rows;
* :mod:`rlcomposer.feedback.studies` — the stored studies;

on the plumbing of :mod:`rlcomposer.feedback.storage`. What the dashboard computes
from them (activity, agreement, self-consistency, win-rates) is
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

import sqlalchemy as sa

from rlcomposer.feedback import database
from rlcomposer.feedback.answers import (
    EXPORT_COLUMNS,
    AnswerStore,
    ComparisonRecord,
    RatingRecord,
    new_client_id,
)
from rlcomposer.feedback.database import DatabaseUnavailable
from rlcomposer.feedback.pool import (
    MAX_TAG,
    MelodyRecord,
    PoolAddResult,
    PoolMelody,
    PoolStore,
    check_tag,
    tokens_sha1,
)
from rlcomposer.feedback.raters import (
    MAX_NAME,
    SIMULATED_PREFIX,
    InvalidToken,
    NameTaken,
    RaterInfo,
    RaterStore,
    check_rater_name,
    rater_name_key,
    token_digest,
)
from rlcomposer.feedback.schema import Comparison, Rater, StarRating, StoredMelody
from rlcomposer.feedback.storage import MAX_TIMING_MS, FeedbackError, first_line
from rlcomposer.feedback.studies import StudyStore


class FeedbackStore(RaterStore, PoolStore, AnswerStore, StudyStore):
    """Listener feedback in one database (SQLite or PostgreSQL).

    Build it with :func:`open_store`, which also runs the migrations.
    """

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
                                     f"({first_line(error)})") from None


__all__ = [
    "ComparisonRecord", "DatabaseUnavailable", "EXPORT_COLUMNS", "FeedbackError", "FeedbackStore",
    "InvalidToken", "MAX_NAME", "MAX_TAG", "MAX_TIMING_MS", "MelodyRecord", "NameTaken", "PoolAddResult",
    "PoolMelody", "RaterInfo", "RatingRecord", "SIMULATED_PREFIX", "check_rater_name", "check_tag",
    "new_client_id", "open_store", "rater_name_key", "token_digest", "tokens_sha1",
]
