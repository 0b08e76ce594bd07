"""The registry's metadata store on SQLAlchemy Core (SQLite or PostgreSQL).

Every state change runs in one write transaction, so a process killed at any point leaves the
database as it was before the change or after it, never between.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InterfaceError, OperationalError

from modelyard.core.entities import (
    AliasChange,
    Lineage,
    ModelVersion,
    RegisteredModel,
    Status,
)
from modelyard.core.names import validate_alias, validate_model_name
from modelyard.core.references import ModelRef
from modelyard.core.signature import Signature
from modelyard.errors import ConflictError, NotFoundError
from modelyard.registry.sql.audit import append_audit
from modelyard.registry.sql.engine import (
    connect_error,
    ensure_schema,
    make_engine,
    write_connection,
)
from modelyard.registry.sql.schema import (
    alias_events,
    aliases,
    model_versions,
    registered_models,
)

__all__ = ["NewVersion", "SqlRegistryStore"]

_RM = registered_models
_MV = model_versions


# The two lookups every load and every alias resolution make, built once: one joined query
# each instead of one per table (a resolve is on the hot path of servers following aliases).
_VERSION_BY_ALIAS = (
    select(_MV)
    .select_from(
        _RM.join(aliases, aliases.c.model_id == _RM.c.id).join(
            _MV, and_(_MV.c.model_id == _RM.c.id, _MV.c.version == aliases.c.version)))
    .where(_RM.c.name == bindparam("name"), aliases.c.alias == bindparam("alias"),
           _RM.c.status != Status.DELETED.value)
)
_VERSION_BY_NUMBER = (
    select(_MV)
    .select_from(_RM.join(_MV, _MV.c.model_id == _RM.c.id))
    .where(_RM.c.name == bindparam("name"), _MV.c.version == bindparam("version"),
           _RM.c.status != Status.DELETED.value, _MV.c.status != Status.DELETED.value)
)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class NewVersion:
    """Everything the store needs to insert a version (artifacts are already stored)."""

    __slots__ = (
        "artifact_digest", "created_by", "description", "format", "lineage", "name",
        "parent_alias", "profile_digest", "runtime_meta", "signature", "size_bytes", "tags",
    )

    def __init__(
        self,
        *,
        name: str,
        format: str,
        artifact_digest: str,
        size_bytes: int,
        created_by: str,
        lineage: Lineage,
        signature: Signature | None = None,
        runtime_meta: dict[str, Any] | None = None,
        profile_digest: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        parent_alias: str = "production",
    ) -> None:
        self.name = validate_model_name(name)
        self.format = format
        self.artifact_digest = artifact_digest
        self.size_bytes = size_bytes
        self.created_by = created_by
        self.lineage = lineage
        self.signature = signature
        self.runtime_meta = runtime_meta or {}
        self.profile_digest = profile_digest
        self.description = description
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.parent_alias = parent_alias


class SqlRegistryStore:
    """Registered models, versions, aliases and the alias history in one SQL database.

    >>> store = SqlRegistryStore("sqlite:///:memory:")        # doctest: +SKIP
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 60.0, auto_create: bool = True) -> None:
        self.engine: Engine = make_engine(url, busy_timeout_s=busy_timeout_s)
        ensure_schema(self.engine, auto_create=auto_create)
        # Reads on PostgreSQL skip BEGIN/ROLLBACK round trips; each read that must be
        # consistent is a single statement. SQLite reads are local and keep their BEGIN.
        self._read_engine: Engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql" else self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- connections -----------------------------------------------------------------------
    def _read(self) -> Connection:
        try:
            return self._read_engine.connect()
        except (OperationalError, InterfaceError) as exc:
            raise connect_error(self.engine, exc) from exc

    # -- models ----------------------------------------------------------------------------
    def create_version(self, new: NewVersion) -> ModelVersion:
        """Allocate the next version number and insert the version, atomically."""
        now = _now()
        with write_connection(self.engine) as conn:
            self._ensure_model(conn, new.name, now)
            row = conn.execute(
                update(_RM)
                .where(_RM.c.name == new.name)
                .values(last_version=_RM.c.last_version + 1, updated_at=now,
                        status=Status.READY.value)
                .returning(_RM.c.id, _RM.c.last_version)
            ).one()
            model_id, number = row.id, row.last_version
            lineage = new.lineage
            if lineage.parent_version is None:
                lineage = Lineage(
                    params=lineage.params, metrics=lineage.metrics, data=lineage.data,
                    code=lineage.code,
                    parent_version=self._default_parent(conn, model_id, new.parent_alias),
                )
            conn.execute(
                insert(_MV).values(
                    model_id=model_id, version=number, format=new.format,
                    status=Status.READY.value, description=new.description, tags=new.tags,
                    created_at=now, created_by=new.created_by,
                    artifact_digest=new.artifact_digest, size_bytes=new.size_bytes,
                    signature=new.signature.to_dict() if new.signature else None,
                    lineage=lineage.to_dict(), runtime_meta=new.runtime_meta,
                    profile_digest=new.profile_digest,
                )
            )
            append_audit(conn, actor=new.created_by, action="version.register",
                         target=f"models:/{new.name}/{number}", model=new.name,
                         after={"version": number, "format": new.format,
                                "artifact_digest": new.artifact_digest,
                                "size_bytes": new.size_bytes,
                                "parent_version": lineage.parent_version,
                                "description": new.description, "tags": new.tags},
                         at=now.timestamp())
        return self.get_version(new.name, number)

    def _ensure_model(self, conn: Connection, name: str, now: datetime) -> None:
        values = {"name": name, "description": "", "tags": {}, "status": Status.READY.value,
                  "last_version": 0, "created_at": now, "updated_at": now}
        dialect = conn.dialect.name
        if dialect == "postgresql":
            stmt: Any = pg_insert(_RM).values(**values).on_conflict_do_nothing(
                index_elements=["name"])
        else:
            stmt = sqlite_insert(_RM).values(**values).on_conflict_do_nothing(
                index_elements=["name"])
        conn.execute(stmt)

    def _default_parent(self, conn: Connection, model_id: int, alias: str) -> int | None:
        """The version a new one most likely derives from: the alias target, else the latest."""
        target = conn.execute(
            select(aliases.c.version).where(
                and_(aliases.c.model_id == model_id, aliases.c.alias == alias))
        ).scalar()
        if target is not None:
            return int(target)
        latest = conn.execute(
            select(_MV.c.version)
            .where(and_(_MV.c.model_id == model_id, _MV.c.status != Status.DELETED.value))
            .order_by(_MV.c.version.desc()).limit(1)
        ).scalar()
        return int(latest) if latest is not None else None

    def get_model(self, name: str) -> RegisteredModel:
        with self._read() as conn:
            row = self._model_row(conn, name)
            return self._to_model(conn, row)

    def list_models(self, *, include_archived: bool = False) -> list[RegisteredModel]:
        statuses = [Status.READY.value] + ([Status.ARCHIVED.value] if include_archived else [])
        with self._read() as conn:
            rows = conn.execute(
                select(_RM).where(_RM.c.status.in_(statuses)).order_by(_RM.c.name)
            ).all()
            return [self._to_model(conn, r) for r in rows]

    def set_model_status(self, name: str, status: Status, actor: str) -> RegisteredModel:
        """Archive, restore or delete a model. Deleting removes its aliases (recorded) and
        marks every version deleted; its version counter survives, so numbers are never
        reused if the name is registered again."""
        now = _now()
        with write_connection(self.engine) as conn:
            row = self._model_row(conn, name)
            before: dict[str, Any] = {"status": row.status}
            if status is Status.DELETED:
                before["aliases"] = self._alias_map(conn, row.id)
            append_audit(conn, actor=actor, action=f"model.{_STATUS_VERB[status]}",
                         target=f"models:/{name}", model=name, before=before,
                         after={"status": status.value}, at=now.timestamp())
            conn.execute(update(_RM).where(_RM.c.id == row.id).values(status=status.value,
                                                                       updated_at=now))
            if status is Status.DELETED:
                for alias_row in conn.execute(
                    select(aliases).where(aliases.c.model_id == row.id)
                ).all():
                    self._record(conn, row.id, alias_row.alias, alias_row.version, None, actor,
                                 now, "model deleted")
                conn.execute(delete(aliases).where(aliases.c.model_id == row.id))
                conn.execute(update(_MV).where(_MV.c.model_id == row.id)
                             .values(status=Status.DELETED.value))
        if status is Status.DELETED:
            return self._to_model_deleted(row)
        return self.get_model(name)

    def update_model(self, name: str, *, description: str | None = None,
                     tags: dict[str, str] | None = None,
                     actor: str = "unknown") -> RegisteredModel:
        with write_connection(self.engine) as conn:
            row = self._model_row(conn, name)
            values: dict[str, Any] = {"updated_at": _now()}
            if description is not None:
                values["description"] = description
            if tags is not None:
                values["tags"] = {**(row.tags or {}), **{str(k): str(v) for k, v in tags.items()}}
            conn.execute(update(_RM).where(_RM.c.id == row.id).values(**values))
            _audit_update(conn, actor, "model.update", f"models:/{name}", name, row, values)
        return self.get_model(name)

    # -- versions --------------------------------------------------------------------------
    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._read() as conn:
            row = conn.execute(_VERSION_BY_NUMBER, {"name": name, "version": version}).first()
            if row is not None:
                return self._to_version(conn, name, row)
            model = self._model_row(conn, name)
            row = self._version_row(conn, model, version)
            return self._to_version(conn, name, row)

    def list_versions(self, name: str, *, include_archived: bool = True) -> list[ModelVersion]:
        statuses = [Status.READY.value] + ([Status.ARCHIVED.value] if include_archived else [])
        with self._read() as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                select(_MV).where(and_(_MV.c.model_id == model.id, _MV.c.status.in_(statuses)))
                .order_by(_MV.c.version)
            ).all()
            alias_map = self._alias_map(conn, model.id)
            return [self._to_version(conn, name, r, alias_map) for r in rows]

    def set_version_status(self, name: str, version: int, status: Status,
                           actor: str = "unknown") -> ModelVersion | None:
        with write_connection(self.engine) as conn:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model, version)
            pointing = sorted(a for a, v in self._alias_map(conn, model.id).items() if v == version)
            if pointing and status is not Status.READY:
                raise ConflictError(
                    f"Version {version} of {name!r} is the target of alias(es) {pointing}; "
                    f"it cannot be {status.value}.",
                    hint=f"Move the alias first: modelyard alias set {name} {pointing[0]} "
                    "VERSION (or modelyard rollback).",
                )
            conn.execute(update(_MV).where(_MV.c.id == row.id).values(status=status.value))
            append_audit(conn, actor=actor, action=f"version.{_STATUS_VERB[status]}",
                         target=f"models:/{name}/{version}", model=name,
                         before={"status": row.status}, after={"status": status.value})
        return None if status is Status.DELETED else self.get_version(name, version)

    def update_version(self, name: str, version: int, *, description: str | None = None,
                       tags: dict[str, str] | None = None,
                       actor: str = "unknown") -> ModelVersion:
        with write_connection(self.engine) as conn:
            model = self._model_row(conn, name)
            row = self._version_row(conn, model, version)
            values: dict[str, Any] = {}
            if description is not None:
                values["description"] = description
            if tags is not None:
                values["tags"] = {**(row.tags or {}), **{str(k): str(v) for k, v in tags.items()}}
            if values:
                conn.execute(update(_MV).where(_MV.c.id == row.id).values(**values))
                _audit_update(conn, actor, "version.update", f"models:/{name}/{version}", name,
                              row, values)
        return self.get_version(name, version)

    # -- references and aliases --------------------------------------------------------------
    def resolve(self, ref: ModelRef, *, at: datetime | None = None) -> ModelVersion:
        """The version ``ref`` points to now (or at time ``at`` for aliases)."""
        if ref.version is not None:
            return self.get_version(ref.name, ref.version)
        with self._read() as conn:
            if ref.alias is not None and at is None:
                row = conn.execute(_VERSION_BY_ALIAS,
                                   {"name": ref.name, "alias": ref.alias}).first()
                if row is not None:
                    return self._to_version(conn, ref.name, row)
            model = self._model_row(conn, ref.name)
            if ref.alias is None:
                row = conn.execute(
                    select(_MV).where(and_(_MV.c.model_id == model.id,
                                           _MV.c.status == Status.READY.value))
                    .order_by(_MV.c.version.desc()).limit(1)
                ).first()
                if row is None:
                    raise NotFoundError(f"Model {ref.name!r} has no ready versions.",
                                        hint=f"Register one: modelyard register PATH --name "
                                        f"{ref.name}")
                return self._to_version(conn, ref.name, row)
            version = self._alias_target(conn, model, ref.alias, at)
            row = conn.execute(
                select(_MV).where(and_(_MV.c.model_id == model.id, _MV.c.version == version))
            ).one()
            return self._to_version(conn, ref.name, row)

    def _alias_target(self, conn: Connection, model: Row[Any], alias: str,
                      at: datetime | None) -> int:
        if at is None:
            target = conn.execute(
                select(aliases.c.version).where(
                    and_(aliases.c.model_id == model.id, aliases.c.alias == alias))
            ).scalar()
        else:
            target = conn.execute(
                select(alias_events.c.to_version)
                .where(and_(alias_events.c.model_id == model.id, alias_events.c.alias == alias,
                            alias_events.c.at <= at))
                .order_by(alias_events.c.id.desc()).limit(1)
            ).scalar()
        if target is None:
            known = sorted(self._alias_map(conn, model.id))
            when = f" at {at.isoformat()}" if at else ""
            raise NotFoundError(
                f"Model {model.name!r} has no alias {alias!r}{when}; its aliases are "
                f"{known or 'none'}.",
                hint=f"Set it with: modelyard alias set {model.name} {alias} VERSION",
            )
        return int(target)

    def set_alias(self, name: str, alias: str, version: int, actor: str,
                  reason: str = "") -> AliasChange:
        validate_alias(alias)
        now = _now()
        with write_connection(self.engine) as conn:
            model = self._model_row(conn, name)
            row = conn.execute(
                select(_MV.c.status).where(and_(_MV.c.model_id == model.id,
                                                _MV.c.version == version))
            ).first()
            if row is None or row.status == Status.DELETED.value:
                raise self._no_version(conn, model, version, deleted=row is not None)
            if row.status == Status.ARCHIVED.value:
                raise ConflictError(
                    f"Version {version} of {name!r} is archived; an alias cannot point to it.",
                    hint=f"Restore it first: modelyard archive {name} {version} --restore",
                )
            previous = self._alias_map(conn, model.id).get(alias)
            if previous is None:
                conn.execute(insert(aliases).values(model_id=model.id, alias=alias,
                                                    version=version, updated_at=now))
            else:
                conn.execute(update(aliases).where(and_(aliases.c.model_id == model.id,
                                                        aliases.c.alias == alias))
                             .values(version=version, updated_at=now))
            return self._record(conn, model.id, alias, previous, version, actor, now, reason,
                                name=name, action="alias.set")

    def delete_alias(self, name: str, alias: str, actor: str, reason: str = "") -> AliasChange:
        now = _now()
        with write_connection(self.engine) as conn:
            model = self._model_row(conn, name)
            previous = self._alias_target(conn, model, alias, None)
            conn.execute(delete(aliases).where(and_(aliases.c.model_id == model.id,
                                                    aliases.c.alias == alias)))
            return self._record(conn, model.id, alias, previous, None, actor, now, reason,
                                name=name, action="alias.delete")

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        with self._read() as conn:
            model = self._model_row(conn, name)
            cond = alias_events.c.model_id == model.id
            if alias is not None:
                cond = and_(cond, alias_events.c.alias == alias)
            rows = conn.execute(select(alias_events).where(cond)
                                .order_by(alias_events.c.id)).all()
            return [self._to_change(name, r) for r in rows]

    def rollback(self, name: str, alias: str, actor: str, reason: str = "") -> AliasChange:
        """Point ``alias`` back to the version it pointed to before its current one."""
        now = _now()
        with write_connection(self.engine) as conn:
            model = self._model_row(conn, name)
            current = self._alias_target(conn, model, alias, None)
            events = conn.execute(
                select(alias_events.c.from_version, alias_events.c.to_version)
                .where(and_(alias_events.c.model_id == model.id, alias_events.c.alias == alias))
                .order_by(alias_events.c.id.desc())
            ).all()
            target = self._previous_target(conn, model.id, current, events)
            if target is None:
                raise ConflictError(
                    f"Alias {alias!r} of {name!r} has no earlier version to roll back to "
                    f"(it points to version {current}).",
                    hint=f"See its history: modelyard alias history {name} --alias {alias}",
                )
            conn.execute(update(aliases).where(and_(aliases.c.model_id == model.id,
                                                    aliases.c.alias == alias))
                         .values(version=target, updated_at=now))
            return self._record(conn, model.id, alias, current, target, actor, now,
                                reason or f"rollback from version {current}", name=name,
                                action="alias.rollback")

    def _previous_target(self, conn: Connection, model_id: int, current: int,
                         events: Iterable[Row[Any, Any]]) -> int | None:
        # Walk the history backwards: the first earlier target that differs from the current
        # version and can still be served is where a rollback goes.
        ready = {
            int(v) for v in conn.execute(
                select(_MV.c.version).where(and_(_MV.c.model_id == model_id,
                                                 _MV.c.status == Status.READY.value))
            ).scalars()
        }
        for ev in events:
            for candidate in (ev.from_version, ev.to_version):
                if candidate is not None and candidate != current and candidate in ready:
                    return int(candidate)
        return None

    # -- helpers ---------------------------------------------------------------------------
    def _record(self, conn: Connection, model_id: int, alias: str, from_v: int | None,
                to_v: int | None, actor: str, at: datetime, reason: str,
                name: str | None = None, action: str | None = None) -> AliasChange:
        conn.execute(insert(alias_events).values(
            model_id=model_id, alias=alias, from_version=from_v, to_version=to_v, actor=actor,
            at=at, reason=reason))
        if action is not None and name is not None:
            # The audit entry carries the move itself: before = old version, after = new.
            append_audit(conn, actor=actor, action=action, target=f"models:/{name}@{alias}",
                         model=name, before=from_v, after=to_v, at=at.timestamp())
        return AliasChange(name or "", alias, from_v, to_v, actor, at, reason)

    def _model_row(self, conn: Connection, name: str) -> Row[Any]:
        validate_model_name(name)
        row = conn.execute(select(_RM).where(_RM.c.name == name)).first()
        if row is None or row.status == Status.DELETED.value:
            raise NotFoundError(
                f"There is no registered model named {name!r}.",
                hint="Run 'modelyard models list' to see registered models.",
            )
        return row

    def _version_row(self, conn: Connection, model: Row[Any], version: int) -> Row[Any]:
        """The row of a live version, or the NotFoundError that lists the versions there are."""
        row = conn.execute(
            select(_MV).where(and_(_MV.c.model_id == model.id, _MV.c.version == version))
        ).first()
        if row is None or row.status == Status.DELETED.value:
            raise self._no_version(conn, model, version, deleted=row is not None)
        return row

    def _no_version(self, conn: Connection, model: Row[Any], version: int,
                    *, deleted: bool) -> NotFoundError:
        versions = conn.execute(
            select(_MV.c.version).where(and_(_MV.c.model_id == model.id,
                                             _MV.c.status != Status.DELETED.value))
            .order_by(_MV.c.version)
        ).scalars().all()
        what = "was deleted" if deleted else "does not exist"
        listing = _ranges(list(versions)) if versions else "none"
        return NotFoundError(
            f"Version {version} of model {model.name!r} {what}; its versions are {listing}.",
            hint=f"Run 'modelyard models versions {model.name}'.",
        )

    def _alias_map(self, conn: Connection, model_id: int) -> dict[str, int]:
        rows = conn.execute(select(aliases.c.alias, aliases.c.version)
                            .where(aliases.c.model_id == model_id)).all()
        return {r.alias: int(r.version) for r in rows}

    def _to_model(self, conn: Connection, row: Row[Any]) -> RegisteredModel:
        latest = conn.execute(
            select(_MV.c.version).where(and_(_MV.c.model_id == row.id,
                                             _MV.c.status != Status.DELETED.value))
            .order_by(_MV.c.version.desc()).limit(1)
        ).scalar()
        return RegisteredModel(
            name=row.name, status=Status(row.status), created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at), latest_version=latest,
            description=row.description, tags=dict(row.tags or {}),
            aliases=self._alias_map(conn, row.id),
        )

    def _to_model_deleted(self, row: Row[Any]) -> RegisteredModel:
        return RegisteredModel(
            name=row.name, status=Status.DELETED, created_at=_utc(row.created_at),
            updated_at=_now(), latest_version=None, description=row.description,
            tags=dict(row.tags or {}), aliases={},
        )

    def _to_version(self, conn: Connection, name: str, row: Row[Any],
                    alias_map: dict[str, int] | None = None) -> ModelVersion:
        if alias_map is None:
            alias_map = self._alias_map(conn, row.model_id)
        return ModelVersion(
            name=name, version=int(row.version), format=row.format, status=Status(row.status),
            created_at=_utc(row.created_at), created_by=row.created_by,
            artifact_digest=row.artifact_digest, size_bytes=int(row.size_bytes),
            signature=Signature.from_dict(row.signature) if row.signature else None,
            lineage=Lineage.from_dict(row.lineage or {}), runtime_meta=dict(row.runtime_meta),
            profile_digest=row.profile_digest, description=row.description,
            tags=dict(row.tags or {}),
            aliases=tuple(sorted(a for a, v in alias_map.items() if v == row.version)),
        )

    def _to_change(self, name: str, row: Row[Any]) -> AliasChange:
        return AliasChange(name, row.alias, row.from_version, row.to_version, row.actor,
                           _utc(row.at), row.reason)


_STATUS_VERB = {Status.READY: "restore", Status.ARCHIVED: "archive", Status.DELETED: "delete"}


def _audit_update(conn: Connection, actor: str, action: str, target: str, name: str,
                  row: Row[Any], values: dict[str, Any]) -> None:
    """Audit a description/tag change: before and after hold only the fields that changed."""
    fields = [f for f in ("description", "tags") if f in values]
    append_audit(conn, actor=actor, action=action, target=target, model=name,
                 before={f: getattr(row, f) for f in fields},
                 after={f: values[f] for f in fields})


def _ranges(numbers: list[int]) -> str:
    """'1-3, 5, 7-9' for [1, 2, 3, 5, 7, 8, 9]."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)
