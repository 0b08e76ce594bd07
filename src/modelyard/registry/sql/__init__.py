"""The SQL metadata store (SQLAlchemy + Alembic; SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from modelyard.registry.sql.store import NewVersion, SqlRegistryStore

__all__ = ["NewVersion", "SqlRegistryStore"]
