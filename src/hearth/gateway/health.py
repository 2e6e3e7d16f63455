"""Readiness: whether this replica should get traffic, and if not, why (``/ready``, OIP's ready).

Not ready while shutting down (SIGTERM drains: load balancers move away first), while a config
model is not serving, while the database is away or its ledger writes fail, or while the shared
rate-limit store is unreachable.
"""

from __future__ import annotations

from hearth.engines.registry import ModelRegistry
from hearth.gateway.limits import Limiter
from hearth.store.database import Database


class Readiness:
    def __init__(self, registry: ModelRegistry, database: Database, limiter: Limiter) -> None:
        self._registry = registry
        self._database = database
        self._limiter = limiter
        self.draining = False  # SIGTERM: readiness fails so load balancers move away

    async def problems(self) -> list[str]:
        problems = ["shutting down: draining in-flight requests"] if self.draining else []
        problems += self._registry.not_ready_reasons()
        if (db := self._database.problem()) is not None:
            problems.append(db)
        if not await self._limiter.healthy():
            problems.append("rate-limit store (redis) unavailable")
        return problems
