"""The admin secret's origin, so a rotated one outlives a restart with the old configured key.

``seeded_from`` is the sha256 of the configured ``HEARTH_ADMIN_KEY`` the stored secret descends
from (by rotation); null for a bootstrap secret.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("admin_secret") as batch:
        batch.add_column(sa.Column("seeded_from", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_secret") as batch:
        batch.drop_column("rotated_at")
        batch.drop_column("seeded_from")
