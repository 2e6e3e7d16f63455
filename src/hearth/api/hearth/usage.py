"""``GET /v1/usage``: the caller's own usage, with its limits and what remains of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from hearth.api.deps import READS_STATE_ROUTE, REQUIRE_KEY, AccountsDep, CallDep

router = APIRouter(prefix="/v1", tags=["Usage"], dependencies=[REQUIRE_KEY])


@router.get("/usage", openapi_extra=READS_STATE_ROUTE)
async def my_usage(accounts: AccountsDep, call: CallDep, since: datetime | None = None) -> dict[str, Any]:
    return await accounts.my_usage(call, since)
