"""Throwaway databases for tests and benchmarks (SQLite files and PostgreSQL databases).

``RLCOMPOSER_TEST_POSTGRES_URL`` (read by the tests and benchmarks, passed in
here) names a PostgreSQL server database to connect through, default
:data:`DEFAULT_POSTGRES_SERVER`; a fresh database ``rlc_test_<random>`` is made
on it and dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from rlcomposer.feedback import database
from rlcomposer.feedback.schema import Base

DEFAULT_POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ENV_TEST_POSTGRES_URL = "RLCOMPOSER_TEST_POSTGRES_URL"


def postgres_reachable(server_url: str = DEFAULT_POSTGRES_SERVER) -> bool:
    """Whether the PostgreSQL server answers within a few seconds."""
    engine = sa.create_engine(database.normalise_url(server_url), connect_args={"connect_timeout": 3},
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


@contextmanager
def throwaway_postgres(server_url: str = DEFAULT_POSTGRES_SERVER, prefix: str = "rlc_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database; yields its URL and drops it at the end."""
    server_url = database.normalise_url(server_url)
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            database.dispose_engine(url)
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def clear_tables(url: str) -> None:
    """Delete every row of the rating tables (keeps the schema and its revision)."""
    engine = database.get_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(sa.text(f"DELETE FROM {table}"))
