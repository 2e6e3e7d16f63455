"""``build_app()``: the FastAPI application, its middleware, routers and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from hearth import __version__
from hearth.api.disconnect import ClientDisconnected
from hearth.api.errors import install_error_handlers
from hearth.api.middleware import CLIENT_CLOSED, BodyLimitMiddleware, RequestContextMiddleware
from hearth.api.routes import chat, classify, embeddings, health, models, tokenize
from hearth.config import Settings
from hearth.engines.registry import ModelRegistry
from hearth.gateway.context import RequestContext

log = logging.getLogger("hearth")


def build_app(
    settings: Settings,
    registry: ModelRegistry | None = None,
    on_request_done: Callable[[RequestContext, int], None] | None = None,
) -> FastAPI:
    registry = registry or ModelRegistry(settings.models, settings.data_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Models load in the background: /health answers at once, /ready once all have loaded.
        loading = asyncio.create_task(registry.load_all(), name="load-models")
        app.state.loading = loading
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(BaseException):
                await loading
            registry.close()

    app = FastAPI(
        title="Hearth",
        version=__version__,
        description="Your own AI provider: local models behind the OpenAI API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.started_at = int(time.time())
    app.state.readiness_checks = []

    install_error_handlers(app)

    @app.exception_handler(ClientDisconnected)
    async def _gone(_request: object, _exc: ClientDisconnected) -> object:
        from starlette.responses import Response

        return Response(status_code=CLIENT_CLOSED)

    for router in (
        health.router,
        models.router,
        chat.router,
        embeddings.router,
        classify.router,
        tokenize.router,
    ):
        app.include_router(router)

    app.add_middleware(RequestContextMiddleware, on_done=on_request_done or _log_request)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def _log_request(ctx: RequestContext, status: int) -> None:
    log.debug("%s %s %s %.1fms", ctx.request_id, ctx.route, status, ctx.latency_ms())
