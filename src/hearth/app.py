"""``build_app()``: the FastAPI application, its middleware, routers and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from starlette.responses import Response

from hearth import __version__
from hearth.api.disconnect import ClientDisconnected
from hearth.api.errors import install_error_handlers
from hearth.api.middleware import CLIENT_CLOSED, BodyLimitMiddleware, RequestContextMiddleware
from hearth.api.openapi import install_openapi
from hearth.api.routes import admin, chat, classify, embeddings, health, models, tokenize, usage, web
from hearth.config import Settings
from hearth.engines.registry import ModelRegistry
from hearth.gateway.auth import load_admin_secret
from hearth.gateway.context import RequestContext
from hearth.gateway.service import Gateway
from hearth.metrics import Metrics

log = logging.getLogger("hearth")

# Matched in this order, one router at a time: the inference routes come first because a
# request walks past every router ahead of its own (measured ~10 % of a short request's CPU).
ROUTERS = (
    chat.router,
    embeddings.router,
    classify.router,
    tokenize.router,
    models.router,
    usage.router,
    health.router,
    admin.router,
    web.router,
)


def build_app(settings: Settings, registry: ModelRegistry | None = None) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = registry or ModelRegistry(settings.models, settings.data_dir)
    gateway = Gateway(settings, registry)
    metrics = Metrics()
    metrics.watch_engines(registry.activities)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Models and the database come up in the background: /health answers at once,
        # /ready once every model has loaded and the database is migrated.
        tasks = [
            asyncio.create_task(registry.load_all(), name="load-models"),
            asyncio.create_task(gateway.connect(), name="connect-store"),
        ]
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
        description="Your own AI provider: local models behind the OpenAI API, with keys, limits and a ledger.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.gateway = gateway
    app.state.metrics = metrics
    app.state.admin_secret = load_admin_secret(settings.data_dir, settings.admin_key)
    app.state.started_at = int(time.time())
    app.state.readiness_checks = [gateway.readiness_problem, gateway.limits_problem]

    install_error_handlers(app)
    install_openapi(app)

    @app.exception_handler(ClientDisconnected)
    async def _gone(_request: Request, _exc: ClientDisconnected) -> Response:
        return Response(status_code=CLIENT_CLOSED)

    for router in ROUTERS:
        app.include_router(router)

    async def request_done(ctx: RequestContext, status: int) -> None:
        metrics.observe(ctx, status)
        await gateway.request_done(ctx, status)

    app.add_middleware(RequestContextMiddleware, on_done=request_done)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, max_header_bytes=settings.max_header_bytes
    )
    return app
