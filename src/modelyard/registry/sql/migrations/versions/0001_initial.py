"""Initial registry schema: models, versions, aliases and the alias history.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registered_models"),
        sa.UniqueConstraint("name", name="uq_registered_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("signature", sa.JSON, nullable=True),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("runtime_meta", sa.JSON, nullable=False),
        sa.Column("profile_digest", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["registered_models.id"],
            name="fk_model_versions_model_id_registered_models",
        ),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["registered_models.id"], name="fk_aliases_model_id_registered_models"
        ),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alias_events"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["registered_models.id"],
            name="fk_alias_events_model_id_registered_models",
        ),
    )
    op.create_index("ix_alias_events_model_alias", "alias_events", ["model_id", "alias", "id"])


def downgrade() -> None:
    op.drop_index("ix_alias_events_model_alias", table_name="alias_events")
    op.drop_table("alias_events")
    op.drop_table("aliases")
    op.drop_table("model_versions")
    op.drop_table("registered_models")
