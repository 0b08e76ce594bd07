"""Security's tables in the registry database (SQLAlchemy Core): API keys, the hash-chained
audit log and model signatures. The registry's Alembic migration 0003 creates them from its own
literal definitions; a test checks that the two agree."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["api_keys", "audit_log", "metadata", "version_signatures"]

metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"})

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("models", JSON, nullable=True),  # None: every model
    Column("salt", String(64), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("created_at", Float(precision=53), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", Float(precision=53), nullable=True),
    Column("revoked_at", Float(precision=53), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("ts", Float(precision=53), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("model", String(128), nullable=True),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_model_ts", "model", "ts"),
)

version_signatures = Table(
    "version_signatures",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("public_key", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("signed_at", Float(precision=53), nullable=False),
    Column("signed_by", String(128), nullable=False),
)
