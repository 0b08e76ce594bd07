"""Engines for SQLite (WAL, immediate write transactions) and PostgreSQL, and migrations.

SQLite allows one writer at a time. pysqlite's default ``BEGIN`` is deferred: two processes can
both read and then both try to write, and one fails with "database is locked" immediately. Write
transactions here start with ``BEGIN IMMEDIATE`` instead, so writers queue on the lock (up to
``busy_timeout``) and readers keep reading the last committed state thanks to WAL.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import time
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError

from modelyard.errors import ConfigurationError, DependencyMissingError, StoreUnavailableError
from modelyard.registry.sql.schema import HEAD_REVISION

__all__ = ["current_revision", "make_engine", "mask_url", "upgrade", "write_connection"]

_WRITE = "modelyard_write"


def mask_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def make_engine(url: str, *, busy_timeout_s: float = 60.0) -> Engine:
    """Create an engine for ``url``; fill in the psycopg driver for plain postgresql:// URLs."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"The database URL {mask_url(url)!r} is not a valid SQLAlchemy URL.",
            hint="Use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname.",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.database, busy_timeout_s)
    if parsed.get_backend_name() == "postgresql":
        try:
            return create_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5},
                pool_size=5, max_overflow=10,
            )
        except ModuleNotFoundError as exc:
            raise DependencyMissingError("psycopg", "postgres", "A PostgreSQL registry") from exc
    raise ConfigurationError(
        f"The database {parsed.get_backend_name()!r} is not supported.",
        hint="Use SQLite (the default) or PostgreSQL.",
    )


def _sqlite_engine(database: str | None, busy_timeout_s: float) -> Engine:
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{database or ':memory:'}",
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, see module doc
        cur = dbapi_connection.cursor()
        if database and database != ":memory:":
            _ensure_wal(cur, busy_timeout_s)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _ensure_wal(cur: Any, busy_timeout_s: float) -> None:
    """Put the database in WAL mode (it stays so, in the file), waiting out other openers.

    Switching the journal mode can answer "database is locked" at once, without SQLite's busy
    handler, while another connection opens or creates the same file (seen in CI: two
    pipeline watchers starting on a new registry). Once the file is in WAL mode nothing
    needs switching, so read the mode first and retry the switch until the busy timeout.
    """
    import sqlite3

    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction, committed on success, rolled back on error."""
    try:
        with engine.connect().execution_options(**{_WRITE: True}) as conn, conn.begin():
            yield conn
    except (OperationalError, SAInterfaceError) as exc:
        raise connect_error(engine, exc) from exc


def connect_error(engine: Engine, exc: Exception) -> StoreUnavailableError:
    url = engine.url.render_as_string(hide_password=True)
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else repr(exc)
    return StoreUnavailableError(
        f"Cannot reach the registry database at {url}: {reason}",
        hint="Check MODELYARD_DATABASE_URL and that the database server is running.",
    )


def current_revision(conn: Connection) -> str | None:
    """The schema revision Alembic recorded, read directly: importing Alembic costs 0.2 s on
    every start of every process, and only migrations need it."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def ensure_schema(engine: Engine, *, auto_create: bool = True) -> None:
    """Create the schema in an empty database; refuse to run on an outdated one."""
    try:
        with engine.connect() as conn:
            rev = current_revision(conn)
    except (OperationalError, SAInterfaceError) as exc:
        raise connect_error(engine, exc) from exc
    if rev == HEAD_REVISION:
        return
    if rev is None and auto_create:
        _migrate(engine, "head", only_if_empty=True)
        return
    raise ConfigurationError(
        f"The registry database is at schema revision {rev!r}, but this modelyard needs "
        f"{HEAD_REVISION!r}.",
        hint="Run 'modelyard db upgrade' (back up the database first).",
    )


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Run Alembic migrations up to ``revision``; safe when several processes race to do it."""
    return _migrate(engine, revision, only_if_empty=False)


def _migrate(engine: Engine, revision: str, *, only_if_empty: bool) -> str | None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("modelyard.registry.sql") / "migrations"))
    with _migration_lock(engine), write_connection(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7305142)")
        # Re-read under the lock: another process may have created the schema meanwhile.
        rev = current_revision(conn)
        if only_if_empty and rev == HEAD_REVISION:
            return rev
        if only_if_empty and rev is None and inspect(conn).get_table_names():
            raise ConfigurationError(
                f"The database at {mask_url(str(engine.url))} already holds tables but no "
                "modelyard schema, so modelyard will not write into it.",
                hint="Point MODELYARD_DATABASE_URL at an empty database of its own.",
            )
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        return current_revision(conn)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (PostgreSQL uses an
    advisory lock inside the transaction instead)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_suffix(".migrate.lock")
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
