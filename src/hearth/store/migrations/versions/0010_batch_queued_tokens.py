"""A key's limit on the tokens it may have queued in unfinished batches, and each batch's
estimate of its input tokens, which that limit counts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("batch_queued_tokens", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("queued_tokens", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("queued_tokens")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("batch_queued_tokens")
