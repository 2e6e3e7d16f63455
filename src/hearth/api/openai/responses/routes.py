"""Responses API routes: create, retrieve, input items, delete and cancel under ``/v1/responses``.

Each route parses its request, calls the gateway's responses service, and renders the result.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from hearth.api.deps import REQUIRE_KEY, CallDep
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.openai.responses import mapper, render
from hearth.api.openai.responses import protocol as rs
from hearth.api.sse import sse_response
from hearth.errors import Unsupported

router = APIRouter(prefix="/v1/responses", tags=["OpenAI Responses"], dependencies=[REQUIRE_KEY])
_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}


@router.post("", response_model=rs.Response, responses=_SSE)
async def create_response(
    body: rs.ResponseCreate, request: Request, api: CallDep
) -> rs.Response | StreamingResponse:
    new, responses = mapper.new_response(body), api.gateway.responses
    if new.background:
        return render.response(await responses.create_background(api.call, new))
    run = await cancel_on_disconnect(request, responses.create(api.call, new))
    if new.stream:
        return sse_response(render.stream(run))
    return render.response(await cancel_on_disconnect(request, run.collect()))


@router.get("/{response_id}", response_model=rs.Response)
async def retrieve_response(response_id: str, api: CallDep, stream: bool = False) -> rs.Response:
    if stream:
        raise Unsupported("streaming a stored response again is not supported yet", param="stream")
    return render.response(await api.gateway.responses.retrieve(api.call, response_id))


@router.get("/{response_id}/input_items", response_model=rs.InputItemList)
async def list_input_items(
    response_id: str,
    api: CallDep,
    after: str | None = None,
    limit: int = Query(default=20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
) -> rs.InputItemList:
    page = await api.gateway.responses.input_items(
        api.call, response_id, after=after, limit=limit, order=order
    )
    return render.input_items(page)


@router.delete("/{response_id}", response_model=rs.ResponseDeleted)
async def delete_response(response_id: str, api: CallDep) -> rs.ResponseDeleted:
    await api.gateway.responses.delete(api.call, response_id)
    return rs.ResponseDeleted(id=response_id)


@router.post("/{response_id}/cancel", response_model=rs.Response)
async def cancel_response(response_id: str, api: CallDep) -> rs.Response:
    return render.response(await api.gateway.responses.cancel(api.call, response_id))
