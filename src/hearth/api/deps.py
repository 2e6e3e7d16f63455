"""``Annotated`` dependencies shared by the routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from hearth.config import Settings
from hearth.engines.registry import ModelRegistry
from hearth.gateway.context import RequestContext


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_context(request: Request) -> RequestContext:
    context: RequestContext | None = getattr(request.state, "context", None)
    if context is None:  # routes outside the API prefixes still get a throwaway context
        context = RequestContext(request_id=f"req_{uuid.uuid4().hex}", route=request.url.path)
        request.state.context = context
    return context


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ContextDep = Annotated[RequestContext, Depends(get_context)]
