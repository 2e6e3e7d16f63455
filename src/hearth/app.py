"""``build_app()``: the composition root. It builds the database, the engines, the limiter and the
gateway, hands them down, and mounts every API family's routes and the middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from fastapi import FastAPI, Request
from starlette.responses import Response

from hearth import __version__
from hearth.api.anthropic import routes as anthropic_routes
from hearth.api.anthropic.errors import AnthropicAdapter
from hearth.api.disconnect import ClientDisconnected
from hearth.api.errors import install_error_handlers
from hearth.api.families import OPENAI, register
from hearth.api.middleware import CLIENT_CLOSED, BodyLimitMiddleware, CallMiddleware
from hearth.api.oip import routes as oip_routes
from hearth.api.oip.errors import OIPAdapter
from hearth.api.ollama import routes as ollama_routes
from hearth.api.ollama.errors import OllamaAdapter
from hearth.api.openai import routes as openai_routes
from hearth.api.openai.responses import routes as responses_routes
from hearth.api.openapi import install_openapi
from hearth.api.routes import admin, admin_models, classify, health, tokenize, usage, web
from hearth.config import Settings
from hearth.engines import worker
from hearth.engines.compute import CPU
from hearth.engines.registry import ModelRegistry
from hearth.gateway.auth import AdminSecret
from hearth.gateway.service import Gateway
from hearth.logs import AccessLogMiddleware
from hearth.metrics import Metrics
from hearth.store.database import Database

log = logging.getLogger("hearth")

# Matched in this order, one router at a time: the inference routes come first because a
# request walks past every router ahead of its own (measured ~10 % of a short request's CPU).
ROUTERS = (
    openai_routes.router,
    responses_routes.router,
    anthropic_routes.router,
    oip_routes.router,
    ollama_routes.router,
    classify.router,
    tokenize.router,
    usage.router,
    health.router,
    admin.router,
    admin_models.router,
    ollama_routes.public,
    web.router,
)

# Which family's error shape and headers each path prefix gets (OpenAI's is the default).
register("/v1/messages", AnthropicAdapter())
register("/v1/responses", OPENAI)
register("/v2", OIPAdapter())
register("/api", OllamaAdapter())


ReadyHook = Callable[[FastAPI], None]


def build_app(
    settings: Settings, registry: ModelRegistry | None = None, on_ready: Sequence[ReadyHook] = ()
) -> FastAPI:
    """The app; ``on_ready`` hooks run once every model has loaded (or failed) and the database is up."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    CPU.enabled = settings.takes_cpu_turns
    worker.MODE = settings.torch_engines
    registry = registry or ModelRegistry(settings.models, settings.data_dir)
    database = Database(settings.resolved_database_url)
    gateway = Gateway(settings, registry, database)
    metrics = Metrics()
    metrics.watch(
        registry.activities,
        models_ready=lambda: sum(1 for s in registry.slots if s.state == "ready"),
        ledger_pending=lambda: database.ledger.pending,
        ledger_lag=lambda: database.ledger.lag_seconds,
        shadow_waiting=lambda: gateway.shadows.waiting,
    )
    gateway.shadows.observers.append(metrics.observe_shadow)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Models and the database come up in the background: /health answers at once,
        # /ready once every model has loaded and the database is migrated.
        tasks = [
            asyncio.create_task(registry.load_all(), name="load-models"),
            asyncio.create_task(gateway.start(), name="connect-store"),
        ]

        async def announce(startup: list[asyncio.Task[None]]) -> None:
            await asyncio.gather(*startup)
            # The database is up: settle the bootstrap admin secret now, not on the first call.
            with contextlib.suppress(Exception):
                await app.state.admin_secret.agree(gateway.db)
            for hook in on_ready:
                hook(app)

        tasks.append(asyncio.create_task(announce(list(tasks)), name="announce-ready"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await gateway.close()
            registry.close()

    app = FastAPI(
        title="Hearth",
        version=__version__,
        description="Your own AI provider: local models behind the OpenAI, Anthropic, Ollama and OIP v2 "
        "APIs, with keys, limits and a usage ledger.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.gateway = gateway
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.admin_secret = AdminSecret(settings.data_dir, settings.admin_key)

    install_error_handlers(app)
    install_openapi(app)

    @app.exception_handler(ClientDisconnected)
    async def _gone(_request: Request, _exc: ClientDisconnected) -> Response:
        return Response(status_code=CLIENT_CLOSED)

    for router in ROUTERS:
        app.include_router(router)

    gateway.observers.append(metrics.observe)
    app.add_middleware(CallMiddleware, gateway=gateway)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, max_header_bytes=settings.max_header_bytes
    )
    # Outermost: the request id every other layer uses, and (JSON logs) the access line.
    app.add_middleware(AccessLogMiddleware, enabled=settings.log_format == "json")
    return app
