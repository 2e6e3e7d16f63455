"""``GET /v1/usage``: the caller's own usage, with its limits and what remains of them."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter

from hearth.api.deps import REQUIRE_KEY, CallDep
from hearth.errors import InvalidRequest
from hearth.store.usage import month_start, usage_summary

router = APIRouter(prefix="/v1", tags=["Usage"], dependencies=[REQUIRE_KEY])


@router.get("/usage")
async def my_usage(call: CallDep, since: datetime | None = None) -> dict[str, Any]:
    key, gateway, ctx = call.key, call.gateway, call.ctx
    if key is None:
        raise InvalidRequest("usage is per API key, and this server runs without keys (--no-auth)")
    ctx.model = "-"

    def query() -> dict[str, Any]:
        with gateway.sessions() as session:
            summary = usage_summary(session, key_id=key.id, since=since).to_dict()
            month = usage_summary(session, key_id=key.id, since=month_start())
        summary["key"] = key.to_dict()
        summary["budget"] = {
            "monthly_tokens": key.monthly_tokens,
            "used_this_month": month.total_tokens,
            "remaining": None
            if key.monthly_tokens is None
            else max(0, key.monthly_tokens - month.total_tokens),
        }
        return summary

    return await asyncio.to_thread(query)
