"""Monitoring's tables in the registry database (SQLAlchemy Core).

The registry's Alembic migrations create them (revision 0002), as migrations should, from
their own literal definitions; a test checks that the two agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import (
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
from sqlalchemy.engine import Connection, Engine

__all__ = ["alert_states", "feedback", "inference_log", "metadata", "metric_values",
           "write_transaction"]


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction. The registry's engine starts it with ``BEGIN IMMEDIATE`` on SQLite
    when a connection carries the ``modelyard_write`` option (a deferred transaction that
    later writes can fail at once with 'database is locked' instead of waiting its turn)."""
    with engine.connect().execution_options(modelyard_write=True) as conn, conn.begin():
        yield conn

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "pk": "pk_%(table_name)s",
    }
)

inference_log = Table(
    "inference_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("row", Integer, nullable=False),
    Column("ts", Float(precision=53), nullable=False),
    Column("latency_ms", Float(precision=53), nullable=False),
    Column("route", String(32), nullable=False),
    Column("error", String(64), nullable=True),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    Index("ix_inference_log_model_ts", "model", "ts"),
    Index("ix_inference_log_model_request", "model", "request_id"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("row", Integer, nullable=False),
    Column("label", Text, nullable=False),
    Column("ts", Float(precision=53), nullable=False),
    Index("ix_feedback_model_request", "model", "request_id"),
)

metric_values = Table(
    "metric_values",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=True),
    Column("window_start", Float(precision=53), nullable=False),
    Column("window_end", Float(precision=53), nullable=False),
    Column("metric", String(256), nullable=False),
    Column("value", Float(precision=53), nullable=True),
    Column("computed_at", Float(precision=53), nullable=False),
    Index("ix_metric_values_model_metric_end", "model", "metric", "window_end"),
)

alert_states = Table(
    "alert_states",
    metadata,
    Column("rule", String(128), primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Float(precision=53), nullable=False),
)
