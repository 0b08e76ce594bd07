"""Monitoring tables: the SQL inference log, ground-truth feedback, metric values over time
and the state of alert rules.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                     primary_key=True, autoincrement=True)


def upgrade() -> None:
    f64 = sa.Float(precision=53)
    op.create_table(
        "inference_log",
        _id(),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("ts", f64, nullable=False),
        sa.Column("latency_ms", f64, nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inference_log"),
    )
    op.create_index("ix_inference_log_model_ts", "inference_log", ["model", "ts"])
    op.create_index("ix_inference_log_model_request", "inference_log", ["model", "request_id"])
    op.create_table(
        "feedback",
        _id(),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("ts", f64, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_model_request", "feedback", ["model", "request_id"])
    op.create_table(
        "metric_values",
        _id(),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("window_start", f64, nullable=False),
        sa.Column("window_end", f64, nullable=False),
        sa.Column("metric", sa.String(256), nullable=False),
        sa.Column("value", f64, nullable=True),
        sa.Column("computed_at", f64, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metric_values"),
    )
    op.create_index("ix_metric_values_model_metric_end", "metric_values",
                    ["model", "metric", "window_end"])
    op.create_table(
        "alert_states",
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", f64, nullable=False),
        sa.PrimaryKeyConstraint("rule", "model", name="pk_alert_states"),
    )


def downgrade() -> None:
    for table in ("alert_states", "metric_values", "feedback", "inference_log"):
        op.drop_table(table)
