"""OpenAI ``GET /v1/models`` and ``GET /v1/models/{id}``, with Hearth's details."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request

from hearth.api.deps import REQUIRE_KEY, CallDep, RegistryDep
from hearth.engines.registry import Slot
from hearth.errors import PermissionDenied
from hearth.protocol import openai as oa

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[REQUIRE_KEY])


def model_card(slot: Slot, created: int, details: bool) -> oa.ModelCard:
    info: dict[str, Any] | None = None
    if details:
        info = {"state": slot.state, "backend": slot.spec.backend, "error": slot.error}
        if slot.engine is not None:
            info.update(
                {k: v for k, v in dataclasses.asdict(slot.engine.info()).items() if k not in {"id", "kind"}}
            )
    return oa.ModelCard(
        id=slot.spec.id,
        created=created,
        kind=slot.spec.kind.value,
        aliases=slot.spec.aliases,
        ready=slot.state == "ready",
        details=info,
    )


@router.get("/models", response_model=oa.ModelList)
async def list_models(request: Request, registry: RegistryDep, call: CallDep) -> oa.ModelList:
    key = call.key
    created: int = request.app.state.started_at
    visible = [s for s in registry.slots if key is None or key.allows_model(s.spec.id)]
    return oa.ModelList(data=[model_card(s, created, details=False) for s in visible])


@router.get("/models/{model_id:path}", response_model=oa.ModelCard)
async def get_model(model_id: str, request: Request, registry: RegistryDep, call: CallDep) -> oa.ModelCard:
    spec = registry.spec(model_id)
    if call.key is not None and not call.key.allows_model(spec.id):
        raise PermissionDenied(f"this API key may not use the model {spec.id!r}", param="model")
    slot = next(s for s in registry.slots if s.spec.id == spec.id)
    return model_card(slot, request.app.state.started_at, details=True)
