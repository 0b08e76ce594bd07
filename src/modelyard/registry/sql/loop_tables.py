"""The tables of the loop-closing automation (SQLAlchemy Core): rollouts of a challenger
against a champion, retraining pipeline runs, and each pipeline's trigger state. The registry's
Alembic migration 0004 creates them from its own literal definitions; a test checks that the
two agree."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, Text

__all__ = ["metadata", "pipeline_runs", "pipeline_state", "rollouts"]

metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"})

_TS = Float(precision=53)  # seconds since the epoch, like the audit log

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("champion", Integer, nullable=False),
    Column("challenger", Integer, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("weight", Float(precision=53), nullable=False),
    Column("step", Integer, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", _TS, nullable=False),
    Column("step_started_at", _TS, nullable=False),
    Column("updated_at", _TS, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_rollouts_model_state", "model", "state"),
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("trigger", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", _TS, nullable=False),
    Column("finished_at", _TS, nullable=True),
    Column("data", JSON, nullable=True),
    Column("params", JSON, nullable=False),
    Column("candidate_metrics", JSON, nullable=False),
    Column("champion_metrics", JSON, nullable=False),
    Column("gates", JSON, nullable=False),
    Column("version", Integer, nullable=True),
    Column("champion_version", Integer, nullable=True),
    Column("log", Text, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_pipeline_runs_pipeline_id", "pipeline", "id"),
)

pipeline_state = Table(
    "pipeline_state",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", _TS, nullable=False),
)
