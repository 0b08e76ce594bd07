"""The registry's domain objects: plain, immutable records that cross every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from modelyard.core.signature import Signature

__all__ = [
    "AliasChange",
    "CodeVersion",
    "DataFingerprint",
    "Lineage",
    "ModelVersion",
    "RegisteredModel",
    "Status",
]


class Status(StrEnum):
    """Life-cycle state of a registered model or of one version."""

    READY = "ready"
    ARCHIVED = "archived"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class DataFingerprint:
    """What a version was trained or validated on: a content hash, a row count and a schema."""

    sha256: str
    rows: int
    schema: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "rows": self.rows, "schema": dict(self.schema)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataFingerprint:
        return cls(sha256=d["sha256"], rows=int(d["rows"]), schema=dict(d["schema"]))


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The source revision a version was registered from."""

    commit: str
    dirty: bool
    repository: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "dirty": self.dirty, "repository": self.repository}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodeVersion:
        return cls(commit=d["commit"], dirty=bool(d["dirty"]), repository=d.get("repository"))


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from."""

    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    data: DataFingerprint | None = None
    code: CodeVersion | None = None
    parent_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "data": self.data.to_dict() if self.data else None,
            "code": self.code.to_dict() if self.code else None,
            "parent_version": self.parent_version,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lineage:
        return cls(
            params=dict(d.get("params") or {}),
            metrics={k: float(v) for k, v in (d.get("metrics") or {}).items()},
            data=DataFingerprint.from_dict(d["data"]) if d.get("data") else None,
            code=CodeVersion.from_dict(d["code"]) if d.get("code") else None,
            parent_version=d.get("parent_version"),
        )


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable version of a registered model."""

    name: str
    version: int
    format: str
    status: Status
    created_at: datetime
    created_by: str
    artifact_digest: str
    size_bytes: int
    signature: Signature | None
    lineage: Lineage
    runtime_meta: dict[str, Any] = field(default_factory=dict)
    profile_digest: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "format": self.format,
            "status": str(self.status),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "artifact_digest": self.artifact_digest,
            "size_bytes": self.size_bytes,
            "signature": self.signature.to_dict() if self.signature else None,
            "lineage": self.lineage.to_dict(),
            "runtime_meta": dict(self.runtime_meta),
            "profile_digest": self.profile_digest,
            "description": self.description,
            "tags": dict(self.tags),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model and the state shared by its versions."""

    name: str
    status: Status
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "latest_version": self.latest_version,
            "description": self.description,
            "tags": dict(self.tags),
            "aliases": dict(self.aliases),
        }


@dataclass(frozen=True, slots=True)
class AliasChange:
    """One move of an alias: who moved it, when, from which version to which, and why."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "reason": self.reason,
        }
