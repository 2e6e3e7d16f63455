"""Anthropic routes: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Each route parses its body, calls the gateway with the neutral request, and renders the result.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from hearth.api.anthropic import mapper, render
from hearth.api.anthropic import protocol as an
from hearth.api.deps import REQUIRE_KEY, CallDep
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.sse import sse_response

router = APIRouter(prefix="/v1", tags=["Anthropic"], dependencies=[REQUIRE_KEY])
_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}


@router.post("/messages", response_model=an.Message, responses=_SSE)
async def create_message(
    body: an.MessagesRequest, request: Request, api: CallDep
) -> an.Message | StreamingResponse:
    stream = await cancel_on_disconnect(request, api.gateway.chat(api.call, mapper.chat_request(body)))
    if body.stream:
        return sse_response(render.message_stream(stream))
    return render.message(stream, await cancel_on_disconnect(request, stream.collect()))


@router.post("/messages/count_tokens", response_model=an.TokenCount)
async def count_tokens(body: an.CountTokensRequest, api: CallDep) -> an.TokenCount:
    count = await api.gateway.count_tokens(api.call, mapper.count_request(body))
    return an.TokenCount(input_tokens=count)
