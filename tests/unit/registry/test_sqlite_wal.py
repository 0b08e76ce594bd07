"""Opening a SQLite registry puts it in WAL mode, and waits out a concurrent opener instead
of failing with "database is locked" (SQLite answers the mode switch without its busy
handler; seen in CI with two pipeline watchers starting on a new registry)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from modelyard.registry.sql.engine import _ensure_wal, make_engine


class _Busy:
    """A cursor whose mode switch is refused ``refusals`` times, as a busy file refuses it."""

    def __init__(self, refusals: int, message: str = "database is locked") -> None:
        self.refusals, self.message, self.mode, self.calls = refusals, message, "delete", 0

    def execute(self, sql: str) -> Any:
        self.calls += 1
        if sql == "PRAGMA journal_mode=WAL":
            if self.refusals:
                self.refusals -= 1
                raise sqlite3.OperationalError(self.message)
            self.mode = "wal"
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_the_switch_is_retried_until_the_file_is_free() -> None:
    cur = _Busy(refusals=3)
    _ensure_wal(cur, busy_timeout_s=5.0)
    assert cur.mode == "wal"


def test_a_database_already_in_wal_mode_is_not_switched_again() -> None:
    cur = _Busy(refusals=100)
    cur.mode = "wal"
    _ensure_wal(cur, busy_timeout_s=0.0)
    assert cur.calls == 1


def test_other_errors_and_a_busy_file_past_the_timeout_are_raised() -> None:
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _ensure_wal(_Busy(refusals=1, message="disk I/O error"), busy_timeout_s=5.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _ensure_wal(_Busy(refusals=10_000), busy_timeout_s=0.1)


def test_many_first_connections_to_a_new_file_all_open_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def connect() -> None:
        engine = make_engine(url)
        start.wait()
        try:
            with engine.connect() as conn:
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=connect) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
