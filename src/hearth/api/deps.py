"""``Annotated`` dependencies shared by the routes of every family."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hearth.api.families import family_for_path
from hearth.errors import AuthenticationFailed
from hearth.gateway.auth import AdminSecret, presented_secret
from hearth.gateway.call import Call
from hearth.gateway.service import Gateway

# The providers are ``async def`` although some never await: FastAPI runs a plain ``def``
# dependency in a worker thread, two thread hops per request that cost more than an embedding.


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@dataclass(frozen=True)
class ApiCall:
    """An authenticated API request, admitted under its key's limits: what the routes work with."""

    gateway: Gateway
    call: Call


async def authorized_call(request: Request) -> ApiCall:
    """Authenticate the caller and admit the request under its key's limits.

    The key headers are read here rather than declared as ``Header()`` parameters: FastAPI's
    parameter extraction for them cost about a fifth of a short request's CPU (measured). The
    OpenAPI document still names them, as security schemes (``hearth.api.openapi``).
    """
    gateway = await get_gateway(request)
    call: Call | None = getattr(request.state, "call", None)
    if call is None:  # outside the API prefixes (never in practice): a call of its own
        path = request.url.path
        call = gateway.open_call(f"req_{uuid.uuid4().hex}", family_for_path(path).name, path)
        request.state.call = call
    headers = request.headers
    await gateway.authorize(call, headers.get("authorization"), headers.get("x-api-key"))
    return ApiCall(gateway, call)


# Routers also list ``authorized_call`` as a router dependency, so no route can skip it; FastAPI
# caches it per request, so a route that takes ``CallDep`` as well runs it once.
CallDep = Annotated[ApiCall, Depends(authorized_call)]
REQUIRE_KEY = Depends(authorized_call)


async def require_admin(request: Request) -> None:
    secret = presented_secret(request.headers.get("authorization"), request.headers.get("x-api-key"))
    admin: AdminSecret = request.app.state.admin_secret
    await admin.agree(request.app.state.gateway.db)
    if not admin.matches(secret):
        raise AuthenticationFailed("incorrect admin key provided")


AdminDep = Depends(require_admin)
