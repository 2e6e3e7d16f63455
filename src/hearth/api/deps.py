"""``Annotated`` dependencies shared by the routes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hearth.config import Settings
from hearth.engines.registry import ModelRegistry
from hearth.errors import AuthenticationFailed
from hearth.gateway.auth import is_admin, presented_secret
from hearth.gateway.context import RequestContext
from hearth.gateway.service import Gateway
from hearth.store.keys import ApiKeyView

# The providers are ``async def`` although they never await: FastAPI runs a plain ``def``
# dependency in a worker thread, two thread hops per request that cost more than an embedding.


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_context(request: Request) -> RequestContext:
    context: RequestContext | None = getattr(request.state, "context", None)
    if context is None:  # routes outside the API prefixes still get a throwaway context
        context = RequestContext(request_id=f"req_{uuid.uuid4().hex}", route=request.url.path)
        request.state.context = context
    return context


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@dataclass(frozen=True)
class ApiCall:
    """An authenticated API request, admitted under its key's limits: what the routes work with."""

    gateway: Gateway
    ctx: RequestContext
    key: ApiKeyView | None


async def authorized_call(request: Request) -> ApiCall:
    """Authenticate the caller and admit the request under its key's limits.

    The key headers are read here rather than declared as ``Header()`` parameters: FastAPI's
    parameter extraction for them cost about a fifth of a short request's CPU (measured). The
    OpenAPI document still names them, as security schemes (``hearth.api.openapi``).
    """
    gateway, ctx = await get_gateway(request), await get_context(request)
    headers = request.headers
    key = await gateway.authenticate(ctx, headers.get("authorization"), headers.get("x-api-key"))
    await gateway.admit(ctx, key)
    return ApiCall(gateway, ctx, key)


# Routers also list ``authorized_call`` as a router dependency, so no route can skip it; FastAPI
# caches it per request, so a route that takes ``CallDep`` as well runs it once.
CallDep = Annotated[ApiCall, Depends(authorized_call)]
REQUIRE_KEY = Depends(authorized_call)


async def require_admin(request: Request) -> None:
    secret = presented_secret(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if not is_admin(secret, request.app.state.admin_secret):
        raise AuthenticationFailed("incorrect admin key provided")


AdminDep = Depends(require_admin)
