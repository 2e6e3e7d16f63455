"""The gateway: who is calling (keys), may they (scope, limits), where it goes (routing), and
what it cost (the ledger row written when the request ends).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine as DbEngine
from sqlalchemy.orm import Session, sessionmaker

from hearth.config import Settings
from hearth.engines.base import Engine
from hearth.engines.registry import ModelRegistry
from hearth.errors import AuthenticationFailed, NotReady, PermissionDenied
from hearth.gateway.auth import presented_secret
from hearth.gateway.context import RequestContext
from hearth.gateway.limits import Admission, Limiter
from hearth.store import migrate
from hearth.store.db import create_db_engine, session_factory
from hearth.store.keys import ApiKeyView, KeyStore
from hearth.store.ledger import LedgerWriter, UsageEvent
from hearth.store.usage import month_start, tokens_used_since

log = logging.getLogger("hearth.gateway")
E = TypeVar("E", bound=Engine)

AUTH_CACHE_TTL_S = 2.0  # revocations reach other replicas within this; this replica at once
BUDGET_CACHE_TTL_S = 1.0


@dataclass
class _Cached:
    key: ApiKeyView | None
    until: float


class Gateway:
    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.auth_enabled = not settings.no_auth
        self.db: DbEngine = create_db_engine(settings.resolved_database_url)
        self.sessions: sessionmaker[Session] = session_factory(self.db)
        self.keys = KeyStore(self.sessions)
        self.ledger = LedgerWriter(self.db, start=False)
        self.limiter = Limiter(settings.redis_url, self._month_usage)
        self.store_ready = False
        self.store_error: str | None = "database not connected yet"
        self._auth_cache: dict[str, _Cached] = {}
        self._budget_cache: dict[int, tuple[float, int]] = {}
        self._touched: dict[int, float] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Run migrations, retrying until the database answers; the server stays up meanwhile."""
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(migrate.upgrade, self.settings.resolved_database_url)
            except Exception as exc:
                self.store_error = f"database unavailable: {type(exc).__name__}"
                log.warning("database not ready (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            self.ledger.start()
            self.store_ready, self.store_error = True, None
            log.info("database ready")
            return

    async def close(self) -> None:
        # Graceful shutdown (SIGTERM) drains every ledger row before the process exits.
        await asyncio.to_thread(self.ledger.close, 30.0)
        await self.limiter.close()
        self.db.dispose()

    def readiness_problem(self) -> str | None:
        if not self.store_ready:
            return self.store_error
        if not self.ledger.healthy:
            return "database unavailable: ledger writes are failing"
        return None

    async def limits_problem(self) -> str | None:
        return None if await self.limiter.healthy() else "rate-limit store (redis) unavailable"

    # -- the request path ----------------------------------------------------------------------

    async def authenticate(
        self, ctx: RequestContext, authorization: str | None, x_api_key: str | None
    ) -> ApiKeyView | None:
        if not self.auth_enabled:
            return None
        secret = presented_secret(authorization, x_api_key)
        key = await self._lookup(secret)
        if key is None:
            raise AuthenticationFailed("incorrect API key provided")
        ctx.key_id, ctx.key_name = key.id, key.name
        self._maybe_touch(key.id)
        return key

    async def _lookup(self, secret: str) -> ApiKeyView | None:
        now = time.monotonic()
        cached = self._auth_cache.get(secret)
        if cached is not None and cached.until > now:
            return cached.key
        if not self.store_ready:
            raise NotReady("the key database is unavailable; try again shortly", retry_after=2)
        try:
            key = await asyncio.to_thread(self.keys.authenticate, secret)
        except Exception as exc:
            raise NotReady("the key database is unavailable; try again shortly", retry_after=2) from exc
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[secret] = _Cached(key, now + AUTH_CACHE_TTL_S)
        return key

    def forget_keys(self) -> None:
        """Drop cached lookups at once (after a revoke or rotate on this replica)."""
        self._auth_cache.clear()

    def _maybe_touch(self, key_id: int) -> None:
        now = time.monotonic()
        if now - self._touched.get(key_id, 0.0) > 60:
            self._touched[key_id] = now
            task = asyncio.get_running_loop().run_in_executor(None, self.keys.touch, key_id)
            task.add_done_callback(lambda f: f.exception())  # a failed touch is not an error

    async def admit(self, ctx: RequestContext, key: ApiKeyView | None) -> Admission | None:
        if key is None:
            return None
        admission = Admission(key)
        ctx.admission = admission
        await self.limiter.admit(admission)
        return admission

    def engine(self, ctx: RequestContext, name: str, cls: type[E]) -> E:
        """Route a model name (id or alias) to its engine, checking the key's scope first."""
        ctx.model = name[:128]  # recorded as asked until it resolves to a model id
        spec = self.registry.spec(name)
        admission = ctx.admission
        if admission is not None and not admission.key.allows_model(spec.id):
            raise PermissionDenied(f"this API key may not use the model {spec.id!r}", param="model")
        engine = self.registry.get(spec.id, cls)
        ctx.model = spec.id
        return engine

    async def reserve_tokens(self, ctx: RequestContext, tokens: int) -> None:
        if ctx.admission is not None:
            await self.limiter.reserve_tokens(ctx.admission, tokens)

    async def request_done(self, ctx: RequestContext, status: int) -> None:
        if ctx.admission is not None:
            await self.limiter.finish(ctx.admission, ctx.total_tokens)
            if ctx.key_id is not None:
                self._budget_cache.pop(ctx.key_id, None)
        if ctx.model is None and ctx.key_id is None and not self.auth_enabled:
            return  # nothing attributable: an anonymous request that never reached a model
        self.ledger.record(
            UsageEvent(
                request_id=ctx.request_id,
                model=ctx.model or "-",
                route=ctx.route,
                key_id=ctx.key_id,
                key_name=ctx.key_name,
                prompt_tokens=ctx.prompt_tokens,
                completion_tokens=ctx.completion_tokens,
                cached_tokens=ctx.cached_tokens,
                images=ctx.images,
                latency_ms=ctx.latency_ms(),
                ttft_ms=ctx.ttft_ms,
                status_code=ctx.failed_status or status,
                error_type=ctx.error_type,
                stream=ctx.stream,
            )
        )

    async def _month_usage(self, key_id: int) -> int:
        now = time.monotonic()
        cached = self._budget_cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        # Rows still queued in this replica's ledger count too, so a burst cannot overspend.
        used = await asyncio.to_thread(self._month_tokens, key_id) + self.ledger.pending_tokens(key_id)
        self._budget_cache[key_id] = (now + BUDGET_CACHE_TTL_S, used)
        return used

    def _month_tokens(self, key_id: int) -> int:
        with self.sessions() as session:
            return tokens_used_since(session, key_id, month_start())
