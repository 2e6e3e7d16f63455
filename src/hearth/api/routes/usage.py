"""``GET /v1/usage``: the caller's own usage, with its limits and what remains of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from hearth.api.deps import REQUIRE_KEY, CallDep

router = APIRouter(prefix="/v1", tags=["Usage"], dependencies=[REQUIRE_KEY])


@router.get("/usage")
async def my_usage(api: CallDep, since: datetime | None = None) -> dict[str, Any]:
    return await api.gateway.accounts.my_usage(api.call, since)
