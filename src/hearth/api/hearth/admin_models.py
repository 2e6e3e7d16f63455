"""``/admin/models`` (load and unload at run time) and ``/admin/routes`` (rollouts), admin key only.

Changes go to the shared database, so every replica applies them (within a second); loading or
unloading a configured model's weights (``/load``, ``/unload``) acts on the replica asked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hearth.api.deps import AdminDep, CatalogDep, ReplicasDep
from hearth.config import ModelSpec
from hearth.engines.registry import ModelEntry

router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[AdminDep])


def _model(entry: ModelEntry) -> dict[str, Any]:
    return {
        "id": entry.spec.id,
        "kind": entry.spec.kind.value,
        "backend": entry.spec.backend,
        "aliases": entry.spec.aliases,
        "origin": entry.origin,
        "state": entry.state,
        "error": entry.error,
        "in_flight": entry.in_flight,
        "load_seconds": entry.load_seconds,
        "keep_alive_s": entry.spec.keep_alive_s,
        **(entry.engine.status() if entry.engine is not None else {}),
    }


@router.get("/models")
async def list_models(catalog: CatalogDep) -> dict[str, Any]:
    return {"object": "list", "data": [_model(e) for e in catalog.entries]}


@router.post("/models", status_code=201)
async def load_model(spec: ModelSpec, replicas: ReplicasDep) -> dict[str, Any]:
    return _model(await replicas.add_model(spec))


@router.post("/models/{name}/load")
async def load_now(name: str, catalog: CatalogDep) -> dict[str, Any]:
    """Load a configured model on this replica now, and wait for it (no request needed)."""
    return _model(await catalog.operator_load(name))


@router.post("/models/{name}/unload")
async def unload_now(name: str, catalog: CatalogDep) -> dict[str, Any]:
    """Free a model's memory on this replica; it stays configured and its next request loads it."""
    return _model(await catalog.operator_unload(name))


@router.delete("/models/{name:path}")
async def unload_model(name: str, replicas: ReplicasDep) -> dict[str, Any]:
    model_id = await replicas.remove_model(name)
    return {"id": model_id, "state": "unloaded", "deleted": True}


class VariantBody(BaseModel):
    model: str
    weight: float = Field(default=100, ge=0, le=100)


class RouteBody(BaseModel):
    strategy: str
    variants: list[VariantBody] = Field(min_length=1)
    shadow: str | None = None


@router.get("/routes")
async def list_routes(replicas: ReplicasDep) -> dict[str, Any]:
    return {
        "object": "list",
        "version": replicas.version,
        "data": [r.to_dict() for r in replicas.routes.values()],
    }


@router.get("/routes/{alias:path}")
async def get_route(alias: str, replicas: ReplicasDep) -> dict[str, Any]:
    return replicas.route(alias).to_dict()


@router.put("/routes/{alias:path}")
async def put_route(alias: str, body: RouteBody, replicas: ReplicasDep) -> dict[str, Any]:
    return (await replicas.put_route(alias, body.model_dump())).to_dict()


@router.delete("/routes/{alias:path}")
async def delete_route(alias: str, replicas: ReplicasDep) -> dict[str, Any]:
    await replicas.delete_route(alias)
    return {"alias": alias, "deleted": True}
