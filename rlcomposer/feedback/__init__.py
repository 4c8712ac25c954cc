"""Listener feedback: the rating database, its migrations, item selection and presentation.

* :mod:`rlcomposer.feedback.schema` — the SQLAlchemy 2 models (the tables);
* :mod:`rlcomposer.feedback.database` — database URLs, engines (SQLite in WAL
  mode or PostgreSQL) and the Alembic migrations;
* :mod:`rlcomposer.feedback.store` — :class:`FeedbackStore`, every read and write
  the app, the CLI and the simulated listeners need (nothing else writes SQL), made of
  one part per aggregate: :mod:`~rlcomposer.feedback.raters`,
  :mod:`~rlcomposer.feedback.pool`, :mod:`~rlcomposer.feedback.answers` and
  :mod:`~rlcomposer.feedback.studies`, on :mod:`~rlcomposer.feedback.storage`;
* :mod:`rlcomposer.feedback.selection` — which melody or pair a rater sees next;
* :mod:`rlcomposer.feedback.study` — listening studies (pool tags, mode, items per
  rater, texts, selection, completion code, listening requirement) and their progress;
* :mod:`rlcomposer.feedback.study_statistics` — what the organiser area shows: people
  and simulated raters apart, win-rates with 95% intervals, agreement with its n;
* :mod:`rlcomposer.feedback.presentation` — audio, engraved score and piano roll
  of a melody, ready for the rating page;
* :mod:`rlcomposer.feedback.export` — every rating and comparison as CSV / JSONL;
* :mod:`rlcomposer.feedback.experiment_stats` — per experiment, the reward model's
  accuracy on people's comparisons and people's win-rate of tuned vs prior;
* :mod:`rlcomposer.feedback.simulated_raters` — a simulated listener rates the
  pool through the store, like a person.

May import: the foundation, ``music``, ``corpus``, ``prior``, ``preferences`` and
``rl``; not ``experiments``, the command line or the app.
"""

from rlcomposer.feedback.database import (
    DatabaseError,
    DatabaseUnavailable,
    default_database_url,
    resolve_database_url,
    upgrade_database,
)
from rlcomposer.feedback.store import FeedbackError, FeedbackStore, open_store

__all__ = [
    "DatabaseError",
    "DatabaseUnavailable",
    "FeedbackError",
    "FeedbackStore",
    "default_database_url",
    "open_store",
    "resolve_database_url",
    "upgrade_database",
]
