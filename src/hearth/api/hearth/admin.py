"""``/admin/keys``, ``/admin/usage``, ``/admin/responses`` and the admin key's own rotation,
protected by the admin key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from hearth.api.deps import AccountsDep, AdminDep, AdminSecretDep, ResponsesDep

INT32 = 2**31 - 1
router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[AdminDep])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    models: list[str] | None = None
    # The bounds are the columns' (a 32-bit and a 64-bit integer) and a century.
    rpm: int | None = Field(default=None, ge=1, le=INT32)
    tpm: int | None = Field(default=None, ge=1, le=INT32)
    max_concurrent: int | None = Field(default=None, ge=1, le=INT32)
    monthly_tokens: int | None = Field(default=None, ge=1, le=2**63 - 1)
    expires_days: int | None = Field(default=None, ge=1, le=36_500)
    # The most input tokens its unfinished batch jobs may hold (OpenAI's enqueued token limit).
    batch_queued_tokens: int | None = Field(default=None, ge=1, le=2**63 - 1)
    # Fair admission: the default priority class of the key's requests, and its weight among
    # keys of one class when the server is overloaded.
    priority: Literal["interactive", "standard", "batch"] = "interactive"
    weight: float = Field(default=1.0, gt=0, le=1000)


@router.get("/keys")
async def list_keys(accounts: AccountsDep) -> dict[str, Any]:
    return {"object": "list", "data": [k.to_dict() for k in await accounts.list_keys()]}


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, accounts: AccountsDep) -> dict[str, Any]:
    view, secret = await accounts.create_key(**body.model_dump())
    return {**view.to_dict(), "secret": secret}


@router.get("/keys/{name}")
async def get_key(name: str, accounts: AccountsDep) -> dict[str, Any]:
    return (await accounts.get_key(name)).to_dict()


@router.post("/keys/{name}/revoke")
async def revoke_key(name: str, accounts: AccountsDep) -> dict[str, Any]:
    return (await accounts.revoke_key(name)).to_dict()


@router.post("/keys/{name}/rotate")
async def rotate_key(name: str, accounts: AccountsDep) -> dict[str, Any]:
    view, secret = await accounts.rotate_key(name)
    return {**view.to_dict(), "secret": secret}


@router.post("/admin-key/rotate")
async def rotate_admin_key(admin: AdminSecretDep) -> dict[str, Any]:
    """A new admin key for every replica on this database; the old one stops working on each
    within a few seconds, without a restart. The secret is shown once, here."""
    secret = await admin.rotate()
    return {"object": "admin_key", "secret": secret, "replicas_refresh_s": admin.REFRESH_S}


@router.get("/usage")
async def all_usage(
    accounts: AccountsDep, key: str | None = None, since: datetime | None = None
) -> dict[str, Any]:
    return await accounts.usage(key, since)


@router.delete("/responses")
async def purge_responses(
    responses: ResponsesDep,
    older_than_days: float = Query(ge=0, le=36_500, description="created more than this long ago"),
) -> dict[str, Any]:
    """Delete every key's finished stored responses older than ``older_than_days``."""
    deleted = await responses.purge(older_than_days)
    return {"object": "responses.purge", "older_than_days": older_than_days, "deleted": deleted}
