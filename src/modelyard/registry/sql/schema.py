"""The registry's tables (SQLAlchemy Core). Alembic migrations under ``migrations/`` create them.

Version numbers come from ``registered_models.last_version``, incremented in the same
transaction that inserts the version row: a crash before commit leaves no gap and no half
version, and a number is never handed out twice, even after the version is deleted.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "HEAD_REVISION",
    "alias_events",
    "aliases",
    "metadata",
    "model_versions",
    "registered_models",
]

HEAD_REVISION = "0004"
"""The newest Alembic revision; a test keeps it equal to the migration scripts' head."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("format", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("artifact_digest", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("signature", JSON, nullable=True),
    Column("lineage", JSON, nullable=False),
    Column("runtime_meta", JSON, nullable=False),
    Column("profile_digest", String(64), nullable=True),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("actor", String(256), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_alias_events_model_alias", "model_id", "alias", "id"),
)
