"""Version signatures in the registry database (table ``version_signatures``).

A version may carry several signatures, one per key; signing again with the same key replaces
that key's signature. Each signature is stored in one write transaction with its audit entry
(action ``version.sign``), after checking that the version still exists and still has the
content that was signed.

>>> store = SqlSignatureStore(registry.engine)                        # doctest: +SKIP
>>> store.add(sign_version(key, model="fraud", version=3, digest=mv.artifact_digest,
...                        signed_by="ann"))                           # doctest: +SKIP
>>> [s.key_id for s in store.list("fraud", 3)]                       # doctest: +SKIP
['1f0c9a2e7b3d4c55']
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, delete, insert, select

from modelyard.core.entities import Status
from modelyard.errors import ConflictError, NotFoundError
from modelyard.registry.sql.audit import append_audit
from modelyard.registry.sql.engine import write_connection
from modelyard.registry.sql.schema import model_versions, registered_models
from modelyard.registry.sql.security_tables import version_signatures
from modelyard.security.signing import VersionSignature

__all__ = ["SIGN_ACTION", "SqlSignatureStore"]

SIGN_ACTION = "version.sign"
_SIG = version_signatures


class SqlSignatureStore:
    """Store and list the signatures of model versions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, sig: VersionSignature, *, actor: str | None = None) -> VersionSignature:
        """Store ``sig`` (replacing an earlier signature of the version by the same key) and
        record it in the audit log, in one transaction."""
        with write_connection(self.engine) as conn:
            digest = _live_digest(conn, sig.model, sig.version)
            if digest != sig.digest:
                raise ConflictError(
                    f"The signature is for content {sig.digest[:12]}, but {sig.uri} holds "
                    f"{digest[:12]}; it was not stored.",
                    hint=f"Sign the version as it is now: modelyard sign {sig.uri} --key KEY",
                )
            key = and_(_SIG.c.model == sig.model, _SIG.c.version == sig.version,
                       _SIG.c.key_id == sig.key_id)
            previous = conn.execute(select(_SIG).where(key)).first()
            if previous is not None:
                conn.execute(delete(_SIG).where(key))
            conn.execute(insert(_SIG).values(
                model=sig.model, version=sig.version, key_id=sig.key_id,
                public_key=sig.public_key, signature=sig.signature, digest=sig.digest,
                signed_at=sig.signed_at.timestamp(), signed_by=sig.signed_by))
            append_audit(
                conn, actor=actor or sig.signed_by, action=SIGN_ACTION, target=sig.uri,
                model=sig.model,
                before=None if previous is None else _summary(_to_signature(previous)),
                after=_summary(sig))
        return sig

    def list(self, model: str, version: int) -> list[VersionSignature]:
        """The signatures stored for one version, oldest first (empty if it has none)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_SIG).where(and_(_SIG.c.model == model, _SIG.c.version == version))
                .order_by(_SIG.c.signed_at, _SIG.c.key_id)
            ).all()
        return [_to_signature(r) for r in rows]


def _live_digest(conn: Connection, model: str, version: int) -> str:
    row = conn.execute(
        select(model_versions.c.artifact_digest)
        .select_from(registered_models.join(
            model_versions, model_versions.c.model_id == registered_models.c.id))
        .where(registered_models.c.name == model, model_versions.c.version == version,
               registered_models.c.status != Status.DELETED.value,
               model_versions.c.status != Status.DELETED.value)
    ).first()
    if row is None:
        raise NotFoundError(
            f"models:/{model}/{version} does not exist (or was deleted); nothing was signed.",
            hint=f"Run 'modelyard models versions {model}'.",
        )
    return str(row.artifact_digest)


def _summary(sig: VersionSignature) -> dict[str, Any]:
    return {"key_id": sig.key_id, "digest": sig.digest, "signed_by": sig.signed_by}


def _to_signature(row: Row[Any]) -> VersionSignature:
    return VersionSignature(
        model=row.model, version=int(row.version), key_id=row.key_id,
        public_key=row.public_key, signature=row.signature, digest=row.digest,
        signed_at=datetime.fromtimestamp(float(row.signed_at), UTC), signed_by=row.signed_by,
    )
