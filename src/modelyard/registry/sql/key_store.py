"""API keys in the registry database: create, list, look up, revoke.

Only a salted hash of each secret is stored (:mod:`modelyard.security.keys`). Creating and
revoking a key each append an audit entry (``key.create``, ``key.revoke``) in the same
transaction as the change, so the log and the table never disagree.

>>> keys = SqlKeyStore(client.store.engine)                                 # doctest: +SKIP
>>> issued = keys.create(name="ci", role="predictor", actor="ann")          # doctest: +SKIP
>>> issued.token  # shown once                                              # doctest: +SKIP
'my_4f0c..._...'
>>> keys.revoke(issued.record.key_id, actor="ann").revoked_at               # doctest: +SKIP
1795000000.0
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from modelyard.errors import ConflictError, NotFoundError
from modelyard.registry.sql.audit import append_audit
from modelyard.registry.sql.engine import connect_error, write_connection
from modelyard.registry.sql.security_tables import api_keys
from modelyard.security.keys import ApiKey, IssuedKey, issue_key
from modelyard.security.policy import Role, parse_role

__all__ = ["SqlKeyStore"]


class SqlKeyStore:
    """The ``api_keys`` table of one registry database (the schema is the registry's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, *, name: str, role: Role | str, actor: str,
               models: Iterable[str] | None = None, expires_at: float | None = None,
               now: float | None = None) -> IssuedKey:
        """Create a key; the returned ``token`` is the only time the secret exists in clear."""
        issued = issue_key(name=name, role=parse_role(role), created_by=actor,
                           now=time.time() if now is None else now, models=models,
                           expires_at=expires_at)
        rec = issued.record
        with write_connection(self.engine) as conn:
            conn.execute(insert(api_keys).values(
                key_id=rec.key_id, name=rec.name, role=rec.role.label,
                models=list(rec.models) if rec.models is not None else None, salt=rec.salt,
                hash=rec.hash, created_at=rec.created_at, created_by=rec.created_by,
                expires_at=rec.expires_at, revoked_at=None))
            append_audit(conn, actor=actor, action="key.create", target=f"key:{rec.key_id}",
                         after=_audited(rec), at=rec.created_at)
        return issued

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked and expired ones included, oldest first."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at,
                                                              api_keys.c.key_id)).all()
        except (OperationalError, InterfaceError) as exc:
            raise connect_error(self.engine, exc) from exc
        return [_record(row) for row in rows]

    def get(self, key_id: str) -> ApiKey:
        """The key ``key_id``; :class:`NotFoundError` if there is none."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        except (OperationalError, InterfaceError) as exc:
            raise connect_error(self.engine, exc) from exc
        if row is None:
            raise NotFoundError(f"There is no API key {key_id!r}.",
                                hint="Run 'modelyard keys list' to see the key ids.")
        return _record(row)

    def revoke(self, key_id: str, *, actor: str, now: float | None = None) -> ApiKey:
        """Revoke a key: servers refuse it once their key cache refreshes (a few seconds)."""
        at = time.time() if now is None else now
        with write_connection(self.engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
            if row is None:
                raise NotFoundError(f"There is no API key {key_id!r}.",
                                    hint="Run 'modelyard keys list' to see the key ids.")
            if row.revoked_at is not None:
                raise ConflictError(f"The API key {key_id!r} ({row.name}) is already revoked.",
                                    hint="Run 'modelyard keys list' to see which keys are "
                                         "active.")
            conn.execute(update(api_keys).where(api_keys.c.key_id == key_id)
                         .values(revoked_at=at))
            append_audit(conn, actor=actor, action="key.revoke", target=f"key:{key_id}",
                         before={"revoked_at": None}, after={"revoked_at": at}, at=at)
            revoked = conn.execute(
                select(api_keys).where(api_keys.c.key_id == key_id)).one()
        return _record(revoked)

    def has_unrevoked(self) -> bool:
        """Whether any key that is not revoked exists (``security.auth=auto`` turns on then)."""
        return any(k.revoked_at is None for k in self.list_keys())


def _audited(rec: ApiKey) -> dict[str, Any]:
    # What the audit log keeps of a new key: never the salt or the hash.
    return {"key_id": rec.key_id, "name": rec.name, "role": rec.role.label,
            "models": list(rec.models) if rec.models is not None else None,
            "expires_at": rec.expires_at}


def _record(row: Row[Any]) -> ApiKey:
    models = row.models
    return ApiKey(
        key_id=row.key_id, name=row.name, role=parse_role(row.role),
        models=tuple(models) if models is not None else None, salt=row.salt, hash=row.hash,
        created_at=float(row.created_at), created_by=row.created_by,
        expires_at=None if row.expires_at is None else float(row.expires_at),
        revoked_at=None if row.revoked_at is None else float(row.revoked_at))
