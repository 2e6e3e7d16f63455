"""The bootstrap admin secret, agreed through the database: the first replica's wins."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hearth.store.errors import db_errors
from hearth.store.tables import AdminSecretHash

ROW = 1


def claim_admin_secret(sessions: sessionmaker[Session], candidate_hash: str) -> str:
    """Store ``candidate_hash`` unless a secret is stored already; returns the one that is.

    Two replicas starting together both try to insert the one row; the loser's insert fails
    on the primary key and it reads the winner's.
    """
    with db_errors(), sessions() as session:
        stored = session.scalar(select(AdminSecretHash.secret_hash).where(AdminSecretHash.id == ROW))
        if stored is not None:
            return stored
        session.add(AdminSecretHash(id=ROW, secret_hash=candidate_hash))
        try:
            session.commit()
            return candidate_hash
        except sa_exc.IntegrityError:
            session.rollback()
        stored = session.scalar(select(AdminSecretHash.secret_hash).where(AdminSecretHash.id == ROW))
        assert stored is not None
        return stored
