"""The admin secret, agreed through the database: one row whose sha256 every replica accepts.

The first replica's secret wins (its configured ``HEARTH_ADMIN_KEY``, or the bootstrap secret it
made). A rotation replaces the row; replicas read it again every few seconds, so the old secret
stops working everywhere without a restart. A replica restarted with the configured key that
was rotated away keeps the rotated one (``seeded_from`` says where it came from); an operator who
configures a different key takes the row over with it.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from hearth.store.connection import rowcount
from hearth.store.errors import db_errors
from hearth.store.tables import AdminSecretHash, utcnow

ROW = 1


def claim_admin_secret(sessions: sessionmaker[Session], candidate_hash: str, configured: bool = False) -> str:
    """Store ``candidate_hash`` unless a secret is stored already; returns the one that is.

    Two replicas starting together both try to insert the one row; the loser's insert fails
    on the primary key and it reads the winner's. A ``configured`` candidate replaces a stored
    secret that neither is it nor was rotated from it (the operator changed the key).
    """
    with db_errors(), sessions() as session:
        row = session.get(AdminSecretHash, ROW)
        if row is not None:
            if configured and candidate_hash not in (row.secret_hash, row.seeded_from):
                row.secret_hash, row.seeded_from, row.rotated_at = candidate_hash, candidate_hash, None
                session.commit()
            return row.secret_hash
        seeded = candidate_hash if configured else None
        session.add(AdminSecretHash(id=ROW, secret_hash=candidate_hash, seeded_from=seeded))
        try:
            session.commit()
            return candidate_hash
        except sa_exc.IntegrityError:
            session.rollback()
        stored = session.scalar(select(AdminSecretHash.secret_hash).where(AdminSecretHash.id == ROW))
        assert stored is not None
        return stored


def stored_admin_hash(sessions: sessionmaker[Session]) -> str | None:
    with db_errors(), sessions() as session:
        return session.scalar(select(AdminSecretHash.secret_hash).where(AdminSecretHash.id == ROW))


def rotate_admin_secret(sessions: sessionmaker[Session], current_hash: str, new_hash: str) -> bool:
    """Replace the secret ``current_hash`` with ``new_hash``; False when another rotation came first."""
    with db_errors(), sessions() as session:
        changed = rowcount(
            session.execute(
                update(AdminSecretHash)
                .where(AdminSecretHash.id == ROW, AdminSecretHash.secret_hash == current_hash)
                .values(secret_hash=new_hash, rotated_at=utcnow())
            )
        )
        session.commit()
        return bool(changed)
