"""Database URLs, engines and migrations for the rating store.

* The embedded default is a SQLite file in the user data folder
  (``platformdirs.user_data_dir("rlcomposer")/feedback.sqlite3``), opened in WAL
  mode with a busy timeout (30 s; ``?timeout=SECONDS`` in the URL changes it), foreign keys on, and write transactions that take
  the write lock up front (``BEGIN IMMEDIATE``) so concurrent writers queue
  instead of failing.
* ``sqlite:///PATH?mode=ro`` opens the file read-only (SQLite's URI mode): nothing
  is written to the database file, no migration runs (it must be at the newest schema), and in a
  folder that cannot be written (a read-only filesystem) it is opened as immutable,
  so that ``ratings export`` reads a database on read-only media.
* PostgreSQL is reached with ``postgresql+psycopg://user@host:port/db``
  (``postgresql://`` is read as the same).
* :func:`upgrade_database` runs the Alembic migrations of the top-level
  ``alembic/`` folder (installed as the package ``rlcomposer_migrations``),
  at most once per process and URL; on PostgreSQL it holds an advisory lock, so
  two processes starting together migrate once.

Library functions take URLs as arguments; only the CLI and the app read
``RLCOMPOSER_DATABASE_URL`` (and pass it to :func:`resolve_database_url`).
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from rlcomposer.errors import RLComposerError

ENV_DATABASE_URL = "RLCOMPOSER_DATABASE_URL"
SQLITE_FILENAME = "feedback.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_KEY = 7_204_311_902  # pg_advisory_lock key for rlcomposer's migrations
MIGRATIONS_PACKAGE = "rlcomposer_migrations"
"""The import name of the top-level ``alembic/`` folder (pyproject.toml maps it)."""


class DatabaseError(RLComposerError):
    """A database URL that cannot be used, or a migration that cannot run."""


class DatabaseUnavailable(DatabaseError):
    """The database is down, locked or unreachable; the caller may try again."""


# ------------------------------------------------------------------------ URLs
def default_database_path() -> Path:
    """The embedded SQLite file: ``feedback.sqlite3`` in the user data folder."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("rlcomposer")) / SQLITE_FILENAME


def default_database_url() -> str:
    """``sqlite:///`` URL of :func:`default_database_path`."""
    return f"sqlite:///{default_database_path()}"


def resolve_database_url(explicit: str | None = None, environment: str | None = None) -> str:
    """The URL to use: ``explicit`` (``--db``) wins over ``environment``
    (``$RLCOMPOSER_DATABASE_URL``), else the embedded default. Checked by
    :func:`normalise_url`."""
    for candidate in (explicit, environment):
        if candidate is not None and candidate.strip():
            return normalise_url(candidate.strip())
    return normalise_url(default_database_url())


def normalise_url(url: str) -> str:
    """Check a database URL and pick the driver: a plain file path becomes a
    SQLite URL, ``postgresql://`` becomes ``postgresql+psycopg://``.

    Raises :class:`DatabaseError` naming the URL and the reason.
    """
    text = url.strip()
    if "://" not in text:
        if not text:
            raise DatabaseError("database URL is empty")
        text = f"sqlite:///{Path(text).expanduser().resolve()}"
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise DatabaseError(f"database URL '{_safe(url)}' is not a valid URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise DatabaseError(f"database URL '{_safe(url)}': use sqlite:///PATH")
        if parsed.database and parsed.database != ":memory:" and not Path(parsed.database).is_absolute():
            # a relative file is the one in today's working folder, not wherever an engine was made first
            parsed = parsed.set(database=str(Path(parsed.database).expanduser().resolve()))
        return parsed.render_as_string(hide_password=False)
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgresql+psycopg"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        else:
            raise DatabaseError(
                f"database URL '{_safe(url)}': use postgresql+psycopg://USER@HOST:PORT/DB (psycopg 3)")
        if not parsed.database:
            raise DatabaseError(f"database URL '{_safe(url)}' names no database")
        return parsed.render_as_string(hide_password=False)
    raise DatabaseError(
        f"database URL '{_safe(url)}': unsupported database '{parsed.drivername}' "
        "(use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB)")


def _safe(url: str) -> str:
    """A URL fit for messages: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def display_url(url: str) -> str:
    """``url`` with its password hidden, for messages and ``db where``."""
    return _safe(url)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None (in-memory or not SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(path: Path) -> None:
    """A file that exists and is not empty must be a SQLite database (else a one-line DatabaseError)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise DatabaseError(f"database file '{path}' is a folder, not a SQLite database") from None
    except OSError as error:
        raise DatabaseError(f"database file '{path}': {error.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise DatabaseError(f"database file '{path}' is not a SQLite database")


def require_existing_database(url: str, source: str = "--db") -> None:
    """Refuse a SQLite file that does not exist (for commands that only read: they must not create one).

    ``source`` says where the URL came from (``--db``, ``$RLCOMPOSER_DATABASE_URL``, the default),
    so the message says where it looked. Other databases are checked when connecting.
    """
    path = sqlite_path(normalise_url(url))
    if path is None:
        return
    if not path.exists():
        raise DatabaseError(f"database file '{path}' (from {source}) does not exist; check the path, "
                            "or create it with `rlcomposer db upgrade`")
    check_sqlite_file(path)


def require_rating_tables(url: str) -> None:
    """Refuse a database that has no rating tables yet (empty, or some other program's)."""
    if current_revision(url) is None:
        raise DatabaseError(f"database {display_url(url)} holds no rating tables (an empty or another "
                            "program's database); create them with `rlcomposer db upgrade`")


def not_a_database(url: str, error: BaseException) -> DatabaseError:
    """A one-line DatabaseError for a file or server that is not a usable rating database."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    return DatabaseError(f"database {display_url(url)} cannot be read "
                         f"({reason[0] if reason else type(error).__name__})")


# --------------------------------------------------------------------- engines
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def is_read_only(url: str) -> bool:
    """Whether ``url`` is a SQLite file opened read-only (``sqlite:///PATH?mode=ro``)."""
    parsed = make_url(normalise_url(url))
    return parsed.get_backend_name() == "sqlite" and parsed.query.get("mode") == "ro"


def _read_only_engine(url: str, path: Path | None, timeout_ms: int) -> Engine:
    """An engine whose connections open ``path`` with SQLite's ``mode=ro`` (immutable when its
    folder cannot be written: a WAL file there could not get its shared-memory file)."""
    import os
    import sqlite3
    from urllib.parse import quote

    if path is None:
        raise DatabaseError(f"database URL '{_safe(url)}': mode=ro needs a SQLite file")
    if not path.is_file():
        raise DatabaseError(f"database file '{path}' does not exist (mode=ro opens an existing file only)")
    check_sqlite_file(path)
    uri = f"file:{quote(str(path))}?mode=ro" + ("" if os.access(path.parent, os.W_OK) else "&immutable=1")

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=timeout_ms / 1000, check_same_thread=False)

    engine = sa.create_engine("sqlite://", creator=connect)
    _configure_sqlite(engine, wal=False, busy_timeout_ms=timeout_ms)
    return engine


def create_database_engine(url: str) -> Engine:
    """A new engine for ``url`` (normalised); SQLite in WAL mode with a busy timeout
    (read-only with ``?mode=ro``)."""
    url = normalise_url(url)
    parsed: URL = make_url(url)
    if parsed.get_backend_name() == "sqlite" and is_read_only(url):
        try:
            timeout_ms = int(float(parsed.query.get("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)) * 1000)
        except (TypeError, ValueError):
            raise DatabaseError(f"database URL '{url}': timeout must be a number of seconds") from None
        return _read_only_engine(url, sqlite_path(url), timeout_ms)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and path == default_database_path():
            path.parent.mkdir(parents=True, exist_ok=True)
        if path is not None and not path.parent.is_dir():
            raise DatabaseError(f"database file '{path}': folder {path.parent} does not exist")
        if path is not None:
            check_sqlite_file(path)
        timeout_ms = SQLITE_BUSY_TIMEOUT_MS
        if "timeout" in parsed.query:  # sqlite:///file?timeout=SECONDS
            try:
                timeout_ms = int(float(parsed.query["timeout"]) * 1000)
            except (TypeError, ValueError):
                raise DatabaseError(f"database URL '{url}': timeout must be a number of seconds") from None
        engine = sa.create_engine(url, connect_args={"timeout": timeout_ms / 1000})
        _configure_sqlite(engine, wal=path is not None, busy_timeout_ms=timeout_ms)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20,
                            connect_args={"connect_timeout": 5})


def get_engine(url: str) -> Engine:
    """The process-wide engine of ``url`` (created once)."""
    url = normalise_url(url)
    with _engines_lock:
        if url not in _engines:
            _engines[url] = create_database_engine(url)
        return _engines[url]


def dispose_engine(url: str) -> None:
    """Close the pooled connections of ``url``'s engine and forget it."""
    url = normalise_url(url)
    with _engines_lock:
        engine = _engines.pop(url, None)
        _migrated.discard(url)
    if engine is not None:
        engine.dispose()


def _configure_sqlite(engine: Engine, wal: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised via engine
        # let SQLAlchemy's "begin" event (below) emit BEGIN, not the driver
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            _retry_while_locked(lambda: cursor.execute("PRAGMA journal_mode = WAL"), busy_timeout_ms)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # pragma: no cover - exercised via engine
        # writers take the lock up front, so they wait (busy timeout) instead of
        # failing with "database is locked" when upgrading a read transaction
        if connection.get_execution_options().get("rlc_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def _retry_while_locked(action, timeout_ms: int) -> None:
    """Run ``action``, retrying for up to ``timeout_ms`` while SQLite says "database is locked":
    switching a new file to WAL takes the lock without waiting on the busy timeout."""
    import sqlite3

    deadline = time.monotonic() + timeout_ms / 1000
    pause = 0.01
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on a SQLite database file, so that two processes migrating
    the same new file run one after the other (SQLite's own locks, which are ``fcntl`` locks and
    do not conflict with this one, cannot keep two first migrations apart). No-op elsewhere."""
    path = sqlite_path(url)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    handle = None
    if path is not None and fcntl is not None:
        try:
            handle = open(path, "ab")  # noqa: SIM115 - closed below
        except OSError:
            handle = None  # SQLite reports the path's problem itself
    try:
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def is_unavailable(error: BaseException) -> bool:
    """Whether a SQLAlchemy error means "down, locked or unreachable" (worth a retry)."""
    return isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError))


def unavailable(url: str, error: BaseException) -> DatabaseUnavailable:
    """A one-line :class:`DatabaseUnavailable` for ``error`` on ``url``."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return DatabaseUnavailable(f"database {display_url(url)} is unavailable ({reason})")


# ------------------------------------------------------------------ migrations
def migrations_dir() -> Path:
    """The Alembic script folder: the top-level ``alembic/`` folder, found by its import name
    :data:`MIGRATIONS_PACKAGE` (in a wheel and in an editable install alike)."""
    spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / "env.py").is_file():
            return Path(location)
    raise DatabaseError(f"the migrations ({MIGRATIONS_PACKAGE}) are missing from the installation: reinstall rlcomposer")


def alembic_config(url: str):
    """An Alembic ``Config`` for ``url`` without any ini file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


_migrated: set[str] = set()
_migrate_lock = threading.RLock()


@contextmanager
def _migration_connection(url: str) -> Iterator[sa.Connection]:
    engine = get_engine(url).execution_options(rlc_write=True)  # SQLite: BEGIN IMMEDIATE
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
        else:
            yield connection


def _run(url: str, action: str, revision: str) -> None:
    from alembic.util import CommandError

    from alembic import command

    config = alembic_config(url)
    try:
        # alembic's context is process-global: one migration at a time in a process;
        # across processes, PostgreSQL's advisory lock or SQLite's write lock
        with _migrate_lock, _sqlite_file_lock(url), _migration_connection(url) as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
            connection.commit()
    except CommandError as error:
        raise DatabaseError(f"migration {action} to '{revision}': {error}") from None
    except sa.exc.SQLAlchemyError as error:
        if is_unavailable(error) and not _is_not_a_database(error):
            raise unavailable(url, error) from None
        if isinstance(error, sa.exc.DatabaseError):
            raise not_a_database(url, error) from None
        raise


def _is_not_a_database(error: BaseException) -> bool:
    text = str(getattr(error, "orig", None) or error).lower()
    return "not a database" in text or "malformed" in text


def upgrade_database(url: str, revision: str = "head") -> None:
    """Migrate ``url`` up to ``revision`` (default: the newest)."""
    url = normalise_url(url)
    _run(url, "upgrade", revision)
    if revision == "head":
        _migrated.add(url)


def downgrade_database(url: str, revision: str) -> None:
    """Migrate ``url`` down to ``revision`` (``base`` empties the database)."""
    url = normalise_url(url)
    _migrated.discard(url)
    _run(url, "downgrade", revision)


def ensure_migrated(url: str) -> None:
    """Upgrade ``url`` to head once per process (the app's start-up)."""
    url = normalise_url(url)
    if url in _migrated:
        return
    if is_read_only(url):  # nothing may be written: the file must already be at the newest schema
        revision, head = current_revision(url), head_revision()
        if revision != head:
            raise DatabaseError(f"database {display_url(url)} is opened read-only (mode=ro) and is at schema "
                                f"revision {revision or '(none: no rating tables)'}, not the newest ({head}): "
                                "upgrade a writable copy with `rlcomposer db upgrade` first")
        _migrated.add(url)
        return
    with _migrate_lock:
        if url not in _migrated:
            upgrade_database(url)


def current_revision(url: str) -> str | None:
    """The revision ``url`` is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    url = normalise_url(url)
    try:
        with get_engine(url).connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except sa.exc.SQLAlchemyError as error:
        if is_unavailable(error) and not _is_not_a_database(error):
            raise unavailable(url, error) from None
        if isinstance(error, sa.exc.DatabaseError):
            raise not_a_database(url, error) from None
        raise


def head_revision() -> str:
    """The newest revision of the shipped migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
