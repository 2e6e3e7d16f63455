"""Anthropic routes: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Each route parses its body, calls the gateway with the neutral request, and renders the result.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from hearth.api.anthropic import mapper, render
from hearth.api.anthropic import protocol as an
from hearth.api.deps import REQUIRE_KEY, CallDep, GatewayDep
from hearth.api.serving import generated

router = APIRouter(prefix="/v1", tags=["Anthropic"], dependencies=[REQUIRE_KEY])
_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}


@router.post("/messages", response_model=an.Message, responses=_SSE)
async def create_message(
    body: an.MessagesRequest, request: Request, gateway: GatewayDep, call: CallDep
) -> an.Message | StreamingResponse:
    return await generated(
        request,
        gateway.chat(call, mapper.chat_request(body)),
        streaming=render.message_stream if body.stream else None,
        whole=render.message,
    )


@router.post("/messages/count_tokens", response_model=an.TokenCount)
async def count_tokens(body: an.CountTokensRequest, gateway: GatewayDep, call: CallDep) -> an.TokenCount:
    count = await gateway.count_tokens(call, mapper.count_request(body))
    return an.TokenCount(input_tokens=count)
