"""``build_app()``: the composition root. It builds every service once (the engines' shared
context, the registry, the database, the limiter, the resolver, the gateway and the services the
routes use), hands them down, runs their background work, and mounts every API family's routes
and the middleware. Nothing here is a process global: two apps in one process share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from hearth import __version__, tracing
from hearth.api.anthropic import batches as message_batch_routes
from hearth.api.anthropic import routes as anthropic_routes
from hearth.api.anthropic.errors import ANTHROPIC
from hearth.api.deps import Services
from hearth.api.disconnect import ClientDisconnected
from hearth.api.errors import install_error_handlers
from hearth.api.families import Families
from hearth.api.hearth import admin, admin_models, classify, health, tokenize, usage, web
from hearth.api.hearth.errors import HEARTH
from hearth.api.hearth.errors import PREFIXES as HEARTH_PREFIXES
from hearth.api.middleware import CLIENT_CLOSED, BodyLimitMiddleware, CallMiddleware
from hearth.api.oip import routes as oip_routes
from hearth.api.oip.errors import OIP
from hearth.api.ollama import routes as ollama_routes
from hearth.api.ollama.errors import OLLAMA
from hearth.api.openai import audio as audio_routes
from hearth.api.openai import batches as batch_routes
from hearth.api.openai import files as files_routes
from hearth.api.openai import rerank as rerank_routes
from hearth.api.openai import routes as openai_routes
from hearth.api.openai import speech as speech_routes
from hearth.api.openai.errors import OPENAI
from hearth.api.openai.responses import routes as responses_routes
from hearth.api.openai.responses.errors import RESPONSES
from hearth.api.openapi import install_openapi
from hearth.config import Settings
from hearth.engines.context import EngineContext
from hearth.engines.registry import ModelRegistry
from hearth.gateway.accounts import Accounts
from hearth.gateway.auth import AdminSecret
from hearth.gateway.batches import Batches, BatchRunner
from hearth.gateway.catalog import Catalog
from hearth.gateway.files import Files
from hearth.gateway.health import Readiness
from hearth.gateway.keyring import KeyRing
from hearth.gateway.limits import FailOpenLimiter, Limiter
from hearth.gateway.replica_sync import ReplicaSync
from hearth.gateway.resolver import Resolver
from hearth.gateway.responses import Responses
from hearth.gateway.routing import RouteTable
from hearth.gateway.service import Gateway
from hearth.gateway.shadow import ShadowRunner
from hearth.gateway.speech import Speech
from hearth.logs import AccessLogMiddleware
from hearth.metrics import Metrics
from hearth.store.database import Database

log = logging.getLogger("hearth")

# What a browser page may read of an answer: the request id and each family's rate-limit headers.
CORS_EXPOSED = [
    "x-request-id", "request-id", "retry-after", "x-hearth-variant",
    *(f"x-ratelimit-{w}-{u}" for w in ("limit", "remaining", "reset") for u in ("requests", "tokens")),
    *(f"anthropic-ratelimit-{u}-{w}" for u in ("requests", "tokens") for w in ("limit", "remaining", "reset")),
]  # fmt: skip

# Matched in this order, one router at a time: the inference routes come first because a
# request walks past every router ahead of its own (measured ~10 % of a short request's CPU).
ROUTERS = (
    openai_routes.router,
    rerank_routes.router,
    audio_routes.router,
    files_routes.router,
    batch_routes.router,
    message_batch_routes.router,
    speech_routes.router,
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


def families() -> Families:
    """Which family's error shape, words and headers each path prefix gets (OpenAI's by default)."""
    return Families(
        OPENAI,
        [
            ("/v1/messages", ANTHROPIC),
            ("/v1/responses", RESPONSES),
            ("/v2", OIP),
            ("/v2/rerank", OPENAI),  # Cohere's v2 path: OpenAI's error shape, as vLLM answers it
            ("/api", OLLAMA),
            *((prefix, HEARTH) for prefix in HEARTH_PREFIXES),
        ],
    )


KEEP_ALIVE_SWEEP_S = 1.0

ReadyHook = Callable[[FastAPI], None]


@dataclass(frozen=True)
class Root:
    """Everything the app is built from, before it is an app: what ``running`` starts and stops,
    and what tools and tests reach for when they look inside."""

    settings: Settings
    registry: ModelRegistry
    database: Database
    limiter: Limiter
    shadows: ShadowRunner
    replicas: ReplicaSync
    responses: Responses
    services: Services
    batch_runner: BatchRunner

    @property
    def gateway(self) -> Gateway:
        return self.services.gateway


def build_root(settings: Settings, registry: ModelRegistry | None = None) -> Root:
    """Build every service once and hand each its collaborators."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = registry or ModelRegistry(settings.models, EngineContext.of(settings))
    journal = settings.data_dir / "ledger-journal" if settings.ledger_durable else None
    database = Database(settings.resolved_database_url, journal)
    keys = KeyRing(database)
    limiter = (
        FailOpenLimiter(settings.redis_url, keys.month_usage)
        if settings.redis_url and settings.limits_fail_open
        else Limiter(settings.redis_url, keys.month_usage)
    )
    routes = RouteTable()
    resolver = Resolver(registry, routes)
    shadows = ShadowRunner()
    gateway = Gateway(settings, keys, limiter, resolver, database.ledger, shadows)
    replicas = ReplicaSync(database, registry, routes, settings.routes, settings.redis_url)
    responses = Responses(
        gateway, database, settings.responses_heartbeat_s, settings.responses_retention_days
    )
    metrics = Metrics()
    metrics.watch(
        registry.activities,
        models_ready=lambda: sum(1 for e in registry.entries if e.state == "ready"),
        ledger_pending=lambda: database.ledger.pending,
        ledger_lag=lambda: database.ledger.lag_seconds,
        shadow_waiting=lambda: shadows.waiting,
        statuses=registry.statuses,
    )
    shadows.observers.append(metrics.observe_shadow)
    gateway.observers.append(metrics.observe)
    services = Services(
        settings=settings,
        gateway=gateway,
        catalog=Catalog(registry, resolver),
        accounts=Accounts(database, keys.forget),
        responses=responses,
        files=Files(database.files, settings.max_file_bytes),
        batches=Batches(database.batches, database.files),
        speech=Speech(resolver, settings.fair_admission),
        replicas=replicas,
        readiness=Readiness(registry, database, limiter),
        admin_secret=AdminSecret(settings.data_dir, settings.admin_key, database),
        metrics=metrics,
        families=families(),
    )
    batch_runner = BatchRunner(
        gateway,
        database.batches,
        database.files,
        database.keys,
        batch_routes.line_executor(gateway, responses),
        stale_s=settings.batch_stale_s,
    )
    return Root(settings, registry, database, limiter, shadows, replicas, responses, services, batch_runner)


@contextlib.asynccontextmanager
async def running(root: Root, on_ready: Callable[[], None] = lambda: None) -> AsyncIterator[None]:
    """Run the root's background work: models and the database come up in the background (so
    /health answers at once, /ready once every model has loaded and the database is migrated);
    ``on_ready`` runs once both are up. On exit, everything stops and the ledger is drained."""
    registry, database, replicas = root.registry, root.database, root.replicas
    tasks: list[asyncio.Task[None]] = []

    def spawn(work: Coroutine[Any, Any, None], name: str) -> None:
        tasks.append(asyncio.create_task(work, name=name))

    async def unload_idle() -> None:
        while True:
            await asyncio.sleep(KEEP_ALIVE_SWEEP_S)
            await registry.unload_idle()

    async def connect_store() -> None:
        """The database, then what lives in it: shared routes and models, stored responses."""
        replicas.load_config_routes()
        await database.connect()
        await replicas.sync()
        await root.responses.start()
        spawn(replicas.run(), "replica-sync")
        spawn(unload_idle(), "keep-alive")

    loading = asyncio.create_task(registry.load_all(), name="load-models")
    connecting = asyncio.create_task(connect_store(), name="connect-store")
    tasks += [loading, connecting]

    async def announce() -> None:
        await asyncio.gather(loading, connecting)
        # The database is up: settle the bootstrap admin secret now, not on the first call.
        with contextlib.suppress(Exception):
            await root.services.admin_secret.agree()
        root.batch_runner.start()  # models and the database are up: batches may run
        on_ready()

    spawn(announce(), "announce-ready")
    spawn(root.shadows.run(root.gateway.run_shadow), "shadow-worker")
    try:
        yield
    finally:
        await root.batch_runner.close()  # a batch under way is taken over by another replica, or resumed here
        await root.responses.close()  # background work still running ends failed, with a reason
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Graceful shutdown (SIGTERM) drains every ledger row before the process exits.
        await asyncio.to_thread(database.close, 30.0)
        await root.limiter.close()
        await registry.stop_all()
        registry.close()


def _own_server_spans() -> dict[str, Any]:
    """FastAPI releases with native OpenTelemetry open a server span of their own; the access log
    middleware opens Hearth's (it continues the caller's traceparent and names the trace in the
    log line), so theirs stays off and a request has one server span."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False}}
    return {}


def build_app(
    settings: Settings, registry: ModelRegistry | None = None, on_ready: Sequence[ReadyHook] = ()
) -> FastAPI:
    """The app; ``on_ready`` hooks run once every model has loaded (or failed) and the database is up."""
    root = build_root(settings, registry)
    tracing.configure()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def ready() -> None:
            for hook in on_ready:
                hook(app)

        async with running(root, ready):
            yield
        tracing.flush()  # what is batched goes out before the process ends

    app = FastAPI(
        title="Hearth",
        version=__version__,
        description="Your own AI provider: local models behind the OpenAI, Anthropic, Ollama and OIP v2 "
        "APIs, with keys, limits and a usage ledger.",
        lifespan=lifespan,
        **_own_server_spans(),
    )
    app.state.services = root.services
    app.state.root = root  # for tools and tests that look inside
    app.state.registry = root.registry

    install_error_handlers(app, root.services.families)
    install_openapi(app)

    @app.exception_handler(ClientDisconnected)
    async def _gone(_request: Request, _exc: ClientDisconnected) -> Response:
        return Response(status_code=CLIENT_CLOSED)

    for router in ROUTERS:
        app.include_router(router)

    app.add_middleware(
        CallMiddleware,
        gateway=root.gateway,
        families=root.services.families,
        trusted_id_header=settings.trusted_request_id_header,
        durable=settings.ledger_durable,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        families=root.services.families,
        max_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        # A multipart upload carries the file and a few small fields around it.
        larger={
            "/v1/audio/": max(settings.max_body_bytes, settings.max_audio_bytes + 256 * 1024),
            "/v1/files": max(settings.max_body_bytes, settings.max_file_bytes + 256 * 1024),
        },
    )
    # The request id every other layer uses, and (JSON logs) the access line.
    app.add_middleware(AccessLogMiddleware, enabled=settings.log_format == "json")
    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    if origins:  # outermost: a preflight is answered before auth, and errors carry the headers too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    return app
