"""What every replica must agree on, kept in the shared database: rollout routes and run-time models.

Each change bumps one version counter (``cluster_state``) in the same transaction, so a replica
learns that something changed by reading one row, and then reads the lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from hearth.store.connection import rowcount
from hearth.store.errors import db_errors
from hearth.store.tables import ClusterState, ModelRoute, RuntimeModel, utcnow


@dataclass(frozen=True)
class StoredRoute:
    alias: str
    strategy: str
    variants: list[dict[str, Any]]
    shadow: str | None
    version: int


@dataclass(frozen=True)
class ClusterSnapshot:
    version: int
    routes: list[StoredRoute]
    models: dict[str, dict[str, Any]]  # id -> spec


class ClusterStore:
    """Synchronous, like the rest of the store: callers on the event loop use a thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def version(self) -> int:
        with db_errors(), self._sessions() as session:
            return int(session.scalar(select(ClusterState.version).where(ClusterState.id == 1)) or 0)

    def snapshot(self) -> ClusterSnapshot:
        with db_errors(), self._sessions() as session:
            version = int(session.scalar(select(ClusterState.version).where(ClusterState.id == 1)) or 0)
            routes = [
                StoredRoute(r.alias, r.strategy, list(r.variants), r.shadow, r.version)
                for r in session.scalars(select(ModelRoute).order_by(ModelRoute.alias))
            ]
            models = {
                m.id: dict(m.spec)
                for m in session.scalars(select(RuntimeModel).order_by(RuntimeModel.created_at))
            }
        return ClusterSnapshot(version, routes, models)

    def put_route(self, alias: str, strategy: str, variants: list[dict[str, Any]], shadow: str | None) -> int:
        with db_errors(), self._sessions() as session:
            version = self._bump(session)
            row = session.get(ModelRoute, alias)
            if row is None:
                session.add(
                    ModelRoute(
                        alias=alias, strategy=strategy, variants=variants, shadow=shadow, version=version
                    )
                )
            else:
                row.strategy, row.variants, row.shadow, row.version = strategy, variants, shadow, version
                row.updated_at = utcnow()
            session.commit()
            return version

    def delete_route(self, alias: str) -> bool:
        with db_errors(), self._sessions() as session:
            gone = rowcount(session.execute(delete(ModelRoute).where(ModelRoute.alias == alias)))
            if gone:
                self._bump(session)
            session.commit()
            return bool(gone)

    def put_model(self, model_id: str, spec: dict[str, Any]) -> None:
        with db_errors(), self._sessions() as session:
            self._bump(session)
            row = session.get(RuntimeModel, model_id)
            if row is None:
                session.add(RuntimeModel(id=model_id, spec=spec))
            else:
                row.spec = spec
            session.commit()

    def delete_model(self, model_id: str) -> bool:
        with db_errors(), self._sessions() as session:
            gone = rowcount(session.execute(delete(RuntimeModel).where(RuntimeModel.id == model_id)))
            if gone:
                self._bump(session)
            session.commit()
            return bool(gone)

    @staticmethod
    def _bump(session: Session) -> int:
        # UPDATE ... takes the row lock (PostgreSQL) or the write lock (SQLite) first, so two
        # replicas changing things at once get distinct versions.
        bumped = session.execute(
            update(ClusterState).where(ClusterState.id == 1).values(version=ClusterState.version + 1)
        )
        if not rowcount(bumped):
            session.add(ClusterState(id=1, version=1))
            session.flush()
            return 1
        return int(session.scalar(select(ClusterState.version).where(ClusterState.id == 1)) or 1)
