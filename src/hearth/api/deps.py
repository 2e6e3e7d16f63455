"""``Annotated`` dependencies shared by the routes of every family: one per service.

``app.py`` builds the services once (``Services``) and keeps them on the app; each route asks
for the ones it uses (``GatewayDep``, ``CatalogDep``, ``ResponsesDep`` ...) and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from hearth.api.families import Families
from hearth.config import Settings
from hearth.errors import AuthenticationFailed
from hearth.gateway.accounts import Accounts
from hearth.gateway.auth import AdminSecret, presented_secret
from hearth.gateway.batches import Batches
from hearth.gateway.call import Call
from hearth.gateway.catalog import Catalog
from hearth.gateway.files import Files
from hearth.gateway.health import Readiness
from hearth.gateway.replica_sync import ReplicaSync
from hearth.gateway.responses import Responses
from hearth.gateway.service import Gateway
from hearth.gateway.speech import Speech
from hearth.metrics import Metrics

T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    """What the routes use, built by ``app.build_app`` and kept as ``app.state.services``."""

    settings: Settings
    gateway: Gateway
    catalog: Catalog
    accounts: Accounts
    responses: Responses
    files: Files
    batches: Batches
    speech: Speech
    replicas: ReplicaSync
    readiness: Readiness
    admin_secret: AdminSecret
    metrics: Metrics
    families: Families


# The providers are ``async def`` although they never await: FastAPI runs a plain ``def``
# dependency in a worker thread, two thread hops per request that cost more than an embedding.


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _service(pick: Callable[[Services], T]) -> Callable[[Request], Awaitable[T]]:
    async def provide(request: Request) -> T:
        return pick(services(request))

    return provide


GatewayDep = Annotated[Gateway, Depends(_service(lambda s: s.gateway))]
CatalogDep = Annotated[Catalog, Depends(_service(lambda s: s.catalog))]
AccountsDep = Annotated[Accounts, Depends(_service(lambda s: s.accounts))]
ResponsesDep = Annotated[Responses, Depends(_service(lambda s: s.responses))]
FilesDep = Annotated[Files, Depends(_service(lambda s: s.files))]
BatchesDep = Annotated[Batches, Depends(_service(lambda s: s.batches))]
SpeechDep = Annotated[Speech, Depends(_service(lambda s: s.speech))]
ReplicasDep = Annotated[ReplicaSync, Depends(_service(lambda s: s.replicas))]
ReadinessDep = Annotated[Readiness, Depends(_service(lambda s: s.readiness))]
SettingsDep = Annotated[Settings, Depends(_service(lambda s: s.settings))]
AdminSecretDep = Annotated[AdminSecret, Depends(_service(lambda s: s.admin_secret))]


async def authorized_call(request: Request) -> Call:
    """Authenticate the caller and admit the request under its key's limits.

    The key headers are read here rather than declared as ``Header()`` parameters: FastAPI's
    parameter extraction for them cost about a fifth of a short request's CPU (measured). The
    OpenAPI document still names them, as security schemes (``hearth.api.openapi``).
    """
    found = services(request)
    gateway = found.gateway
    call: Call | None = getattr(request.state, "call", None)
    if call is None:  # outside the API prefixes (never in practice): a call of its own
        path = request.url.path
        call = gateway.open_call(f"req_{uuid.uuid4().hex}", found.families.for_path(path).name, path)
        request.state.call = call
    headers = request.headers
    route = request.scope.get("route")
    reads_state = bool((getattr(route, "openapi_extra", None) or {}).get(READS_STATE))
    await gateway.authorize(
        call, headers.get("authorization"), headers.get("x-api-key"), reads_state=reads_state
    )
    return call


# A route that only reads the server's own state says so in its OpenAPI operation
# (``openapi_extra=READS_STATE_ROUTE``): its callers need a key but spend none of its limits.
READS_STATE = "x-hearth-reads-state"
READS_STATE_ROUTE = {READS_STATE: True}


# Routers also list ``authorized_call`` as a router dependency, so no route can skip it; FastAPI
# caches it per request, so a route that takes ``CallDep`` as well runs it once.
CallDep = Annotated[Call, Depends(authorized_call)]
REQUIRE_KEY = Depends(authorized_call)


async def require_admin(request: Request) -> None:
    secret = presented_secret(request.headers.get("authorization"), request.headers.get("x-api-key"))
    admin = services(request).admin_secret
    if not await admin.check(secret):
        raise AuthenticationFailed(f"incorrect admin key provided; {admin.where_to_find}")


AdminDep = Depends(require_admin)
