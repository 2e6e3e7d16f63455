"""``GET /v1/usage``: the caller's own usage, with its limits and what remains of them; and
``GET /v1/usage/recent``: its latest requests and today's activity by the hour."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from hearth.api.deps import READS_STATE_ROUTE, REQUIRE_KEY, AccountsDep, CallDep

router = APIRouter(prefix="/v1", tags=["Usage"], dependencies=[REQUIRE_KEY])


@router.get("/usage/recent", openapi_extra=READS_STATE_ROUTE)
async def my_recent_activity(
    accounts: AccountsDep, call: CallDep, limit: int = Query(default=20, ge=1, le=200)
) -> dict[str, Any]:
    """The caller's latest requests (status, model, tokens, latency) and today's hours (UTC)."""
    return await accounts.my_recent(call, limit)


@router.get("/usage", openapi_extra=READS_STATE_ROUTE)
async def my_usage(accounts: AccountsDep, call: CallDep, since: datetime | None = None) -> dict[str, Any]:
    return await accounts.my_usage(call, since)
