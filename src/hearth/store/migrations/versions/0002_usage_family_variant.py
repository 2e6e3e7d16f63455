"""Usage rows say which API family served them and which model variant (rollouts).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows from before this migration were all served by the OpenAI routes.
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("family", sa.String(length=16), nullable=False, server_default="openai"))
        batch.add_column(sa.Column("variant", sa.String(length=128), nullable=True))
    op.create_index("ix_usage_records_family", "usage_records", ["family"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_family", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("variant")
        batch.drop_column("family")
