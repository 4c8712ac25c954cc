"""Alembic environment for rlcomposer's rating database.

Run by :func:`rlcomposer.feedback.database.upgrade_database` (``rlcomposer db
upgrade`` and the app's start-up), which hands over an open connection; or by
the ``alembic`` command with the top-level ``alembic.ini`` (the URL comes from
``-x url=...``, else ``$RLCOMPOSER_DATABASE_URL``, else the embedded default).
SQLite runs in batch mode (ALTER TABLE by copying the table).
"""

from __future__ import annotations

import os

from alembic import context
from rlcomposer.feedback.database import ENV_DATABASE_URL, get_engine, resolve_database_url
from rlcomposer.feedback.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = resolve_database_url(url, os.environ.get(ENV_DATABASE_URL))
    with get_engine(url).connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
