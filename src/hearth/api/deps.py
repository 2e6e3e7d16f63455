"""``Annotated`` dependencies shared by the routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

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
ContextDep = Annotated[RequestContext, Depends(get_context)]

_AUTH_DOC = "Bearer <key> (OpenAI style)"
_X_API_KEY_DOC = "<key> (Anthropic style)"


async def require_key(
    request: Request,
    authorization: Annotated[str | None, Header(description=_AUTH_DOC)] = None,
    x_api_key: Annotated[str | None, Header(description=_X_API_KEY_DOC)] = None,
) -> ApiKeyView | None:
    """Authenticate the caller and admit the request under its key's limits."""
    # Called directly rather than as sub-dependencies: FastAPI's dependency solving is a
    # large share of a short request's CPU.
    gateway, ctx = await get_gateway(request), await get_context(request)
    key = await gateway.authenticate(ctx, authorization, x_api_key)
    await gateway.admit(ctx, key)
    return key


KeyDep = Annotated[ApiKeyView | None, Depends(require_key)]


async def require_admin(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <admin key>")] = None,
    x_api_key: Annotated[str | None, Header(description="<admin key>")] = None,
) -> None:
    secret = presented_secret(authorization, x_api_key)
    if not is_admin(secret, request.app.state.admin_secret):
        raise AuthenticationFailed("incorrect admin key provided")


AdminDep = Depends(require_admin)
