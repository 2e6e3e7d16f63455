"""``/admin/models`` (load and unload at run time) and ``/admin/routes`` (rollouts), admin key only.

Changes go to the shared database, so every replica applies them (within a second).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hearth.api.deps import AdminDep, GatewayDep
from hearth.config import ModelSpec
from hearth.engines.registry import Slot

router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[AdminDep])


def _model(slot: Slot) -> dict[str, Any]:
    return {
        "id": slot.spec.id,
        "kind": slot.spec.kind.value,
        "backend": slot.spec.backend,
        "aliases": slot.spec.aliases,
        "origin": slot.origin,
        "state": slot.state,
        "error": slot.error,
        "in_flight": slot.in_flight,
        "load_seconds": slot.load_seconds,
        "keep_alive_s": slot.spec.keep_alive_s,
    }


@router.get("/models")
async def list_models(gateway: GatewayDep) -> dict[str, Any]:
    return {"object": "list", "data": [_model(s) for s in gateway.registry.slots]}


@router.post("/models", status_code=201)
async def load_model(spec: ModelSpec, gateway: GatewayDep) -> dict[str, Any]:
    await gateway.cluster.add_model(spec)
    return _model(gateway.registry.slot(spec.id))


@router.delete("/models/{model_id:path}")
async def unload_model(model_id: str, gateway: GatewayDep) -> dict[str, Any]:
    await gateway.cluster.remove_model(model_id)
    return {"id": model_id, "state": "unloaded", "deleted": True}


class VariantBody(BaseModel):
    model: str
    weight: float = Field(default=100, ge=0, le=100)


class RouteBody(BaseModel):
    strategy: str
    variants: list[VariantBody] = Field(min_length=1)
    shadow: str | None = None


@router.get("/routes")
async def list_routes(gateway: GatewayDep) -> dict[str, Any]:
    routes = gateway.cluster.routes
    return {
        "object": "list",
        "version": gateway.cluster.version,
        "data": [r.to_dict() for r in routes.values()],
    }


@router.get("/routes/{alias:path}")
async def get_route(alias: str, gateway: GatewayDep) -> dict[str, Any]:
    return gateway.cluster.route(alias).to_dict()


@router.put("/routes/{alias:path}")
async def put_route(alias: str, body: RouteBody, gateway: GatewayDep) -> dict[str, Any]:
    return (await gateway.cluster.put_route(alias, body.model_dump())).to_dict()


@router.delete("/routes/{alias:path}")
async def delete_route(alias: str, gateway: GatewayDep) -> dict[str, Any]:
    await gateway.cluster.delete_route(alias)
    return {"alias": alias, "deleted": True}
