"""Rollout routes, models loaded at run time, the cluster version replicas poll, shadow rows,
and a dedupe key so a load balancer's retry cannot record one request twice.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_routes",
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("shadow", sa.String(length=128), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alias", name=op.f("pk_model_routes")),
    )
    op.create_table(
        "runtime_models",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_models")),
    )
    op.create_table(
        "cluster_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_state")),
    )
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("shadow_of", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("agreement", sa.Float(), nullable=True))
        batch.add_column(sa.Column("exact_match", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("dedupe_key", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f("uq_usage_records_dedupe_key"), ["dedupe_key"])


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_constraint(op.f("uq_usage_records_dedupe_key"), type_="unique")
        batch.drop_column("dedupe_key")
        batch.drop_column("exact_match")
        batch.drop_column("agreement")
        batch.drop_column("shadow_of")
    op.drop_table("cluster_state")
    op.drop_table("runtime_models")
    op.drop_table("model_routes")
