"""Migrations: empty -> head -> base -> head on SQLite and PostgreSQL, no drift, concurrent start-ups."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from rlcomposer.feedback import database
from rlcomposer.feedback.schema import Base
from rlcomposer.feedback.testing import (
    throwaway_postgres,
)

TABLES = {"raters", "models", "melodies", "rating_sessions", "star_ratings", "comparisons", "studies",
          "current_items", "heard_melodies"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
        yield url
        database.dispose_engine(url)
        return
    postgres_server = request.getfixturevalue("postgres_server")
    with throwaway_postgres(postgres_server) as url:
        yield url


def tables(url: str) -> set[str]:
    return set(sa.inspect(database.get_engine(url)).get_table_names()) - {"alembic_version"}


def drift(url: str) -> list:
    with database.get_engine(url).connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, Base.metadata)


def test_empty_to_head_to_base_to_head(empty_url):
    assert database.current_revision(empty_url) is None and tables(empty_url) == set()
    database.upgrade_database(empty_url)
    assert database.current_revision(empty_url) == database.head_revision()
    assert tables(empty_url) == TABLES
    database.downgrade_database(empty_url, "base")
    assert database.current_revision(empty_url) is None and tables(empty_url) == set()
    database.upgrade_database(empty_url)
    assert tables(empty_url) == TABLES


def test_autogenerate_finds_no_drift_between_models_and_migrations(empty_url):
    database.upgrade_database(empty_url)
    assert drift(empty_url) == []


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    url = f"sqlite:///{tmp_path / 'wal.sqlite3'}"
    database.upgrade_database(url)
    with database.get_engine(url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == database.SQLITE_BUSY_TIMEOUT_MS
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose_engine(url)


def test_two_processes_starting_at_once_both_end_at_head(empty_url):
    code = ("import sys; from rlcomposer.feedback.database import upgrade_database; "
            "upgrade_database(sys.argv[1]); print('ok')")
    processes = [subprocess.Popen([sys.executable, "-c", code, empty_url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert database.current_revision(empty_url) == database.head_revision()
    assert tables(empty_url) == TABLES


def test_ensure_migrated_runs_once_per_process(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'once.sqlite3'}"
    calls = []
    real = database._run
    monkeypatch.setattr(database, "_run", lambda *a: (calls.append(a), real(*a)))
    database.ensure_migrated(url)
    database.ensure_migrated(url)
    assert len(calls) == 1
    database.dispose_engine(url)


def test_the_migrations_folder_is_found():
    folder = database.migrations_dir()
    assert (folder / "env.py").is_file() and (folder / "versions").is_dir()


def test_upgrading_keeps_raters_whose_names_differ_only_in_case_apart(tmp_path):
    url = f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
    database.upgrade_database(url, "0001")
    with database.get_engine(url).begin() as connection:
        for name in ("Keyboard Kim", "keyboard kim", "Ann"):
            connection.execute(sa.text("INSERT INTO raters (name, kind, created_at) VALUES (:n, 'person', '2026-01-01')"),
                               {"n": name})
    database.upgrade_database(url)
    with database.get_engine(url).connect() as connection:
        keys = dict(connection.execute(sa.text("SELECT name, name_key FROM raters")).all())
    assert keys["Keyboard Kim"] == "keyboard kim" and keys["Ann"] == "ann"
    assert keys["keyboard kim"].startswith("keyboard kim#")  # kept apart, never merged silently
    database.dispose_engine(url)
