"""Keep this replica's rollout routes and run-time models in step with the other replicas'.

An admin change is written to the database (bumping ``cluster_state.version``) and applied
here at once; every other replica notices within ``POLL_S`` by reading that one row, or at once
when Redis is configured (a message on ``hearth:cluster``). Routes from the config file are the
base; a route stored through the admin API overrides one of the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from hearth.config import ModelSpec, RouteConfig
from hearth.engines.registry import ModelEntry, ModelRegistry
from hearth.errors import InvalidRequest, NotFound
from hearth.gateway.routing import Route, RouteTable, Variant, build_route
from hearth.store.cluster import StoredRoute
from hearth.store.database import Database

log = logging.getLogger("hearth.cluster")
POLL_S = 0.5
CHANNEL = "hearth:cluster"


class ReplicaSync:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        table: RouteTable,
        config_routes: list[RouteConfig],
        redis_url: str | None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._table = table
        self._config_routes = config_routes
        self._redis_url = redis_url
        self._base: dict[str, Route] = {}
        self._stored: dict[str, Route] = {}
        self._wake = asyncio.Event()
        self._model_tasks: dict[str, asyncio.Task[Any]] = {}
        self.on_change: list[Callable[[], None]] = []

    def load_config_routes(self) -> None:
        """Routes from the config file, checked once the config models are known."""
        names, kinds = self._names_and_kinds()
        self._base = {
            r.alias: build_route(r.alias, r.model_dump(), names, kinds, origin="config")
            for r in self._config_routes
        }
        self._publish()

    # -- the sync loop -------------------------------------------------------------------------

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen()) if self._redis_url else None
        try:
            while True:
                try:
                    version = await asyncio.to_thread(self._db.cluster.version)
                    if version != self._table.version:
                        await self.sync()
                except Exception as exc:  # the database is away: keep the last known state
                    log.warning("cluster sync failed: %s", type(exc).__name__)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
        finally:
            if listener is not None:
                listener.cancel()
            for task in self._model_tasks.values():
                task.cancel()

    async def sync(self) -> None:
        snapshot = await asyncio.to_thread(self._db.cluster.snapshot)
        self._reconcile_models(snapshot.models)
        self._stored = {r.alias: _from_store(r) for r in snapshot.routes}
        self._table.version = snapshot.version
        self._publish()

    def _reconcile_models(self, wanted: Mapping[str, dict[str, Any]]) -> None:
        present = {e.spec.id for e in self._registry.entries if e.origin == "runtime"}
        for model_id, spec in wanted.items():
            if model_id not in present and model_id not in self._model_tasks:
                self._background(model_id, self._registry.add(ModelSpec.model_validate(spec)))
        for model_id in present - set(wanted):
            if model_id not in self._model_tasks:
                self._background(model_id, self._registry.remove(model_id))

    def _background(self, model_id: str, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._model_tasks[model_id] = task

        def done(t: asyncio.Task[Any]) -> None:
            self._model_tasks.pop(model_id, None)
            if not t.cancelled() and t.exception() is not None:
                log.warning("model %s: %s", model_id, t.exception())
            self._publish()

        task.add_done_callback(done)

    @property
    def routes(self) -> Mapping[str, Route]:
        return self._table.routes

    @property
    def version(self) -> int:
        return self._table.version

    def _publish(self) -> None:
        self._table.routes = {**self._base, **self._stored}
        for hook in self.on_change:
            hook()

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        while True:
            try:
                client = aioredis.from_url(self._redis_url or "")
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: polling still applies changes
                log.info("cluster notifications unavailable (%s); polling", type(exc).__name__)
                await asyncio.sleep(2)

    async def _notify(self) -> None:
        if not self._redis_url:
            return
        import redis.asyncio as aioredis

        try:
            client = aioredis.from_url(self._redis_url)
            await client.publish(CHANNEL, "changed")
            await client.aclose()
        except Exception as exc:
            log.info("could not notify other replicas through Redis (%s); they poll", type(exc).__name__)

    # -- admin changes -------------------------------------------------------------------------

    def route(self, alias: str) -> Route:
        route = self.routes.get(alias)
        if route is None:
            raise NotFound(f"there is no route {alias!r}")
        return route

    async def put_route(self, alias: str, body: Mapping[str, Any]) -> Route:
        names, kinds = self._names_and_kinds()
        route = build_route(alias, body, names, kinds)
        variants = [{"model": v.model, "weight": v.weight} for v in route.variants]
        await asyncio.to_thread(self._db.cluster.put_route, alias, route.strategy, variants, route.shadow)
        await self.sync()
        await self._notify()
        return self.routes[alias]

    async def delete_route(self, alias: str) -> None:
        deleted = await asyncio.to_thread(self._db.cluster.delete_route, alias)
        if not deleted:
            if alias in self._base:
                raise InvalidRequest(f"the route {alias!r} is defined in the config file", param="alias")
            raise NotFound(f"there is no route {alias!r}")
        await self.sync()
        await self._notify()

    async def add_model(self, spec: ModelSpec) -> ModelEntry:
        """Store the model for every replica and load it here; raises if it cannot load here."""
        taken = [n for n in (spec.id, *spec.aliases) if n in self._registry.names() or n in self.routes]
        if taken:
            raise InvalidRequest(f"the name {taken[0]!r} is already in use", param="id")
        await asyncio.to_thread(self._db.cluster.put_model, spec.id, spec.model_dump(mode="json"))
        await self._notify()
        entry = await self._registry.add(spec)
        self._table.version = -1  # re-read: the registry now has it, so the sync won't load it twice
        if entry.state == "failed":
            raise InvalidRequest(f"the model {spec.id!r} failed to load: {entry.error}", param="source")
        return entry

    async def remove_model(self, name: str) -> str:
        """Unload a run-time model (named by its id or an alias) on every replica; its id."""
        entry = self._registry.lookup(name)
        if entry is None:
            raise NotFound(f"there is no model {name!r}")
        model_id = entry.spec.id
        if entry.origin == "config":
            raise InvalidRequest(f"the model {model_id!r} is in the config file; remove it there", param="id")
        in_use = [
            r.alias for r in self.routes.values() if model_id in {v.model for v in r.variants} | {r.shadow}
        ]
        if in_use:
            raise InvalidRequest(f"the route {in_use[0]!r} still sends traffic to {model_id!r}", param="id")
        await asyncio.to_thread(self._db.cluster.delete_model, model_id)
        await self._notify()
        await self._registry.remove(model_id)
        return model_id

    def _names_and_kinds(self) -> tuple[dict[str, str], dict[str, Any]]:
        kinds = {e.spec.id: e.spec.kind for e in self._registry.entries}
        return self._registry.names(), kinds


def _from_store(stored: StoredRoute) -> Route:
    # Checked when it was stored, by the replica that took the PUT; model ids are final here.
    variants = tuple(Variant(str(v["model"]), float(v["weight"])) for v in stored.variants)
    return Route(stored.alias, stored.strategy, variants, stored.shadow, stored.version)  # type: ignore[arg-type]
