"""The audit log in the registry database: append inside the caller's transaction, read, verify.

The chain itself (canonical encoding, hashes, verification) is pure and lives in
:mod:`modelyard.security.audit`. Appending reads the newest entry and inserts the next one, so
two writers must not interleave: on SQLite the registry's write transactions start with
``BEGIN IMMEDIATE`` (one writer at a time); on PostgreSQL :func:`append_audit` first takes a
transaction-scoped advisory lock on :data:`AUDIT_LOCK_KEY`, held until the caller commits or
rolls back. ``seq`` is the primary key, so even a writer that skipped the lock could not fork the
chain: its insert would fail instead.

>>> from modelyard.registry.sql.engine import write_connection       # doctest: +SKIP
>>> with write_connection(engine) as conn:                           # doctest: +SKIP
...     append_audit(conn, actor="ann", action="alias.set", target="models:/m@production",
...                  model="m", before=2, after=3)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Row, select, text

from modelyard.registry.sql.engine import write_connection
from modelyard.registry.sql.security_tables import audit_log
from modelyard.security.audit import (
    GENESIS,
    AuditEntry,
    ChainVerdict,
    make_entry,
    verify_chain,
)

__all__ = [
    "AUDIT_LOCK_KEY",
    "SqlAuditLog",
    "append_audit",
    "audit_head",
    "iter_audit",
    "read_audit",
]

AUDIT_LOCK_KEY = 0x6D79_6175_6469_74  # "myaudit": the advisory lock that serialises appends
_PAGE = 2000


def append_audit(conn: Connection, *, actor: str, action: str, target: str,
                 model: str | None = None, before: Any = None, after: Any = None,
                 at: float | None = None) -> AuditEntry:
    """Append one entry to the chain inside ``conn``'s open transaction and return it.

    The entry commits or rolls back with the change it records. Call it from a write
    transaction (``write_connection`` on SQLite); on PostgreSQL the advisory lock it takes is
    released at the end of the caller's transaction.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    last = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (int(last.seq) + 1, str(last.hash)) if last is not None else (1, GENESIS)
    entry = make_entry(seq=seq, ts=time.time() if at is None else at, actor=actor,
                       action=action, target=target, model=model, before=before, after=after,
                       prev_hash=prev_hash)
    conn.execute(audit_log.insert().values(
        seq=entry.seq, ts=entry.ts, actor=entry.actor, action=entry.action,
        target=entry.target, model=entry.model, before=_dump(entry.before),
        after=_dump(entry.after), prev_hash=entry.prev_hash, hash=entry.hash))
    return entry


def read_audit(conn: Connection, *, model: str | None = None, since: float | None = None,
               action: str | None = None, limit: int | None = None) -> list[AuditEntry]:
    """Entries in ``seq`` order, filtered; with ``limit``, the newest ``limit`` of them.

    ``action`` matches exactly, or a prefix when it ends with ``.`` or ``*``
    (``alias.`` / ``alias.*`` match every alias action).
    """
    query = select(audit_log)
    if model is not None:
        query = query.where(audit_log.c.model == model)
    if since is not None:
        query = query.where(audit_log.c.ts >= since)
    if action is not None:
        if action.endswith(("*", ".")):
            query = query.where(audit_log.c.action.startswith(action.rstrip("*"),
                                                              autoescape=True))
        else:
            query = query.where(audit_log.c.action == action)
    if limit is not None:
        rows = conn.execute(query.order_by(audit_log.c.seq.desc()).limit(limit)).all()
        return [_entry(row) for row in reversed(rows)]
    return [_entry(row) for row in conn.execute(query.order_by(audit_log.c.seq)).all()]


def iter_audit(conn: Connection, *, page: int = _PAGE) -> Iterator[AuditEntry]:
    """Every entry in ``seq`` order, read in pages (for verifying a long log in bounded memory)."""
    after = 0
    while True:
        rows = conn.execute(select(audit_log).where(audit_log.c.seq > after)
                            .order_by(audit_log.c.seq).limit(page)).all()
        for row in rows:
            yield _entry(row)
        if len(rows) < page:
            return
        after = int(rows[-1].seq)


def audit_head(conn: Connection) -> AuditEntry | None:
    """The newest entry, or ``None`` for an empty log."""
    row = conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).first()
    return _entry(row) if row is not None else None


class SqlAuditLog:
    """The audit log of one registry database, for callers that own no transaction.

    >>> log = SqlAuditLog(store.engine)                                 # doctest: +SKIP
    >>> log.verify().summary()                                          # doctest: +SKIP
    'chain intact, 12 entries (head 12:...)'
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, *, actor: str, action: str, target: str, model: str | None = None,
               before: Any = None, after: Any = None, at: float | None = None) -> AuditEntry:
        """Append one entry in its own write transaction."""
        with write_connection(self.engine) as conn:
            return append_audit(conn, actor=actor, action=action, target=target, model=model,
                                before=before, after=after, at=at)

    def entries(self, *, model: str | None = None, since: float | None = None,
                action: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """See :func:`read_audit`."""
        with self.engine.connect() as conn:
            return read_audit(conn, model=model, since=since, action=action, limit=limit)

    def head(self) -> AuditEntry | None:
        """See :func:`audit_head`."""
        with self.engine.connect() as conn:
            return audit_head(conn)

    def verify(self, *, expect_head: tuple[int | None, str] | None = None) -> ChainVerdict:
        """Verify the whole chain (see :func:`modelyard.security.audit.verify_chain`)."""
        with self.engine.connect() as conn:
            return verify_chain(iter_audit(conn), expect_head=expect_head)


def _dump(value: Any) -> str | None:
    # ``value`` is already normalised: orjson's compact output reads back to the same value.
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _load(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(seq=int(row.seq), ts=float(row.ts), actor=row.actor, action=row.action,
                      target=row.target, model=row.model, before=_load(row.before),
                      after=_load(row.after), prev_hash=row.prev_hash, hash=row.hash)
