"""Loop tables: rollouts (champion, challenger, mode, steps, policy, state), retraining
pipeline runs, and each pipeline's trigger state.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    f64 = sa.Float(precision=53)
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("champion", sa.Integer, nullable=False),
        sa.Column("challenger", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("weight", f64, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", f64, nullable=False),
        sa.Column("step_started_at", f64, nullable=False),
        sa.Column("updated_at", f64, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_model_state", "rollouts", ["model", "state"])
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("trigger", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", f64, nullable=False),
        sa.Column("finished_at", f64, nullable=True),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("candidate_metrics", sa.JSON, nullable=False),
        sa.Column("champion_metrics", sa.JSON, nullable=False),
        sa.Column("gates", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("champion_version", sa.Integer, nullable=True),
        sa.Column("log", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
    )
    op.create_index("ix_pipeline_runs_pipeline_id", "pipeline_runs", ["pipeline", "id"])
    op.create_table(
        "pipeline_state",
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated_at", f64, nullable=False),
        sa.PrimaryKeyConstraint("pipeline", name="pk_pipeline_state"),
    )


def downgrade() -> None:
    for table in ("pipeline_state", "pipeline_runs", "rollouts"):
        op.drop_table(table)
