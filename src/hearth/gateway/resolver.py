"""The one way from a model name to the model that serves it, for every family and route.

A name is a rollout route's alias, a model id or a model's alias. The resolver picks a route's
variant (once per call, so no request is served by a mix), checks the key's scope (on the name
asked or on the model's own id), and holds the model while the call is in flight, loading it
again first if keep_alive had let it go. Unknown names answer 404 with the names the key may
use. Serving routes (``acquire``), model metadata (``target``) and Ollama's load and unload
idioms (``load``, ``unload``) all come through here, so a backend added to the registry is
reachable from every family at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeVar

from hearth.config import ModelKind, ModelSpec
from hearth.engines.base import Engine
from hearth.engines.registry import ModelEntry, ModelRegistry
from hearth.errors import ModelNotFound, PermissionDenied, Subject
from hearth.gateway.call import Call
from hearth.gateway.routing import Route, RouteTable
from hearth.store.keys import ApiKeyView

E = TypeVar("E", bound=Engine)


@dataclass(frozen=True)
class Target:
    """What a name stands for, for one caller."""

    public: str  # the name the key's scope and the usage row know: a route's alias, else the id
    entry: ModelEntry  # the model that serves it
    route: Route | None = None

    @property
    def spec(self) -> ModelSpec:
        return self.entry.spec

    @property
    def shadow(self) -> str | None:
        route = self.route
        return route.shadow if route is not None and route.strategy == "shadow" else None


class Resolver:
    def __init__(self, registry: ModelRegistry, routes: RouteTable, rng: random.Random | None = None) -> None:
        self._registry = registry
        self._routes = routes
        # Splits canary traffic; nothing secret (bandit B311).
        self._rng = rng or random.Random()  # nosec B311

    def target(self, key: ApiKeyView | None, name: str, *, pick: bool = False) -> Target:
        """The model ``name`` stands for. A route gives its primary variant, or with ``pick``
        the variant that serves one request (by weight, or sticky per key for A/B)."""
        route = self._routes.get(name)
        model_id = name
        if route is not None:
            model_id = route.pick(_key_ident(key), self._rng) if pick else route.primary
        entry = self._registry.lookup(model_id)
        if entry is None:
            raise ModelNotFound(name, self.usable(key))
        public = route.alias if route is not None else entry.spec.id
        if key is not None and not (key.allows_model(public) or key.allows_model(entry.spec.id)):
            raise PermissionDenied(f"this API key may not use the model {public!r}", subject=Subject.MODEL)
        return Target(public, entry, route)

    def usable(self, key: ApiKeyView | None) -> list[str]:
        """The names ``key`` may ask for: each model's id with its aliases, then the routes."""
        names = []
        for entry in self._registry.entries:
            spec = entry.spec
            if key is None or key.allows_model(spec.id):
                names.append(f"{spec.id} ({', '.join(spec.aliases)})" if spec.aliases else spec.id)
        names += [alias for alias in self._routes.routes if key is None or key.allows_model(alias)]
        return names

    def default_model(self, kind: ModelKind) -> str:
        """The first configured model of a kind (a route that names no model uses it)."""
        spec = self._registry.first_of_kind(kind)
        if spec is None:
            raise ModelNotFound(kind.value, message=f"no {kind.value} model is configured")
        return spec.id

    async def acquire(
        self,
        call: Call,
        name: str,
        cls: type[E],
        keep_alive_s: float | None = None,
        *,
        fallback: bool = False,
    ) -> E:
        """The engine that serves ``call``, held until the call closes (unloading waits for it).

        ``keep_alive_s`` (Ollama's) sets how long the model stays loaded after this call. A
        ``fallback`` is a model the operator named to serve when the one asked for cannot: the
        call keeps the public name it asked for, and records the fallback as what served it.
        """
        resolution = call.resolution
        if fallback:
            entry = self._registry.lookup(name)
            if entry is None:
                raise ModelNotFound(name, message=f"the fallback model {name!r} does not exist")
            target = Target(resolution.model or name, entry)
        else:
            resolution.model = name[:128]  # recorded as asked until it resolves
            target = self.target(call.identity.key, name, pick=True)
        self.release(call)  # a second resolve in one call (count_tokens, then chat; a fallback)
        resolution.tried = target.spec.id  # what to fall back from, should it fail to load
        call.metering.load_seconds += await self._registry.load(target.entry, first=False)
        entry, engine = await self._registry.acquire(target.spec.id, cls)
        if keep_alive_s is not None:
            entry.keep_alive_s = keep_alive_s
        resolution.entry, resolution.variant = entry, target.spec.id
        resolution.model, resolution.resolved = target.public, True
        resolution.shadow = target.shadow if not fallback else resolution.shadow
        return engine

    def fallbacks(self, call: Call) -> list[str]:
        """What the operator named to serve in place of the model this call was resolved to."""
        tried = call.resolution.tried
        entry = None if tried is None else self._registry.lookup(tried)
        return [] if entry is None else list(entry.spec.fallbacks)

    def note(self, call: Call, target: Target) -> None:
        """Record which model a call that serves no request of its own was about (load, unload)."""
        resolution = call.resolution
        resolution.model, resolution.variant, resolution.resolved = target.public, target.spec.id, True

    async def held(self, name: str, cls: type[E]) -> tuple[ModelEntry, E]:
        """A model the gateway uses on a call's behalf (a chat's image model), by id or alias;
        give it back with ``registry.release``. No scope applies: the call's model chose it."""
        entry = self._registry.lookup(name)
        if entry is None:
            raise ModelNotFound(name, self.usable(None))
        return await self._registry.acquire(entry.spec.id, cls)

    def give_back(self, entry: ModelEntry) -> None:
        self._registry.release(entry)

    def release(self, call: Call) -> None:
        """The call no longer holds its model (it closed, or resolves another)."""
        entry, call.resolution.entry = call.resolution.entry, None
        if entry is not None:
            self._registry.release(entry)

    async def load(self, key: ApiKeyView | None, name: str, keep_alive_s: float | None = None) -> Target:
        """Have the model loaded without generating (Ollama's empty request); waits for the load."""
        target = self.target(key, name)
        await self._registry.load(target.entry)
        if keep_alive_s is not None:
            target.entry.keep_alive_s = keep_alive_s
        return target

    async def unload(self, key: ApiKeyView | None, name: str) -> Target:
        """Let the model go now (Ollama's ``keep_alive: 0``); its next request loads it again."""
        target = self.target(key, name)
        await self._registry.unload(target.entry)
        return target


def _key_ident(key: ApiKeyView | None) -> str | None:
    """What keeps an A/B bucket sticky: the key (its id and creation time, unique across databases)."""
    return None if key is None else f"{key.id}-{key.created_at.timestamp():.3f}"
