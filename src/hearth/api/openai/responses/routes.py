"""Responses API routes: create, retrieve, input items, delete and cancel under ``/v1/responses``.

Each route parses its request, calls the gateway's responses service, and renders the result.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from hearth.api.deps import REQUIRE_KEY, CallDep, ResponsesDep
from hearth.api.openai.responses import mapper, render
from hearth.api.openai.responses import protocol as rs
from hearth.api.openai.responses.errors import how_to_fit
from hearth.api.serving import respond
from hearth.errors import Unsupported
from hearth.gateway.response_runs import ResponseRun

router = APIRouter(prefix="/v1/responses", tags=["OpenAI Responses"], dependencies=[REQUIRE_KEY])
_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}


@router.post("", response_model=rs.Response, responses=_SSE)
async def create_response(
    body: rs.ResponseCreate, request: Request, responses: ResponsesDep, call: CallDep
) -> rs.Response | StreamingResponse:
    new = mapper.new_response(body)
    with how_to_fit(new):
        if new.background:
            return render.response(await responses.create_background(call, new))
        return await respond(
            request,
            responses.create(call, new),
            streaming=render.stream if new.stream else None,
            collect=ResponseRun.collect,
            whole=lambda _run, record: render.response(record),
        )


@router.get("/{response_id}", response_model=rs.Response)
async def retrieve_response(
    response_id: str, responses: ResponsesDep, call: CallDep, stream: bool = False
) -> rs.Response:
    if stream:
        raise Unsupported("streaming a stored response again is not supported yet", param="stream")
    return render.response(await responses.retrieve(call, response_id))


@router.get("/{response_id}/input_items", response_model=rs.InputItemList)
async def list_input_items(
    response_id: str,
    responses: ResponsesDep,
    call: CallDep,
    after: str | None = None,
    limit: int = Query(default=20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
) -> rs.InputItemList:
    page = await responses.input_items(call, response_id, after=after, limit=limit, order=order)
    return render.input_items(page)


@router.delete("/{response_id}", response_model=rs.ResponseDeleted)
async def delete_response(response_id: str, responses: ResponsesDep, call: CallDep) -> rs.ResponseDeleted:
    await responses.delete(call, response_id)
    return rs.ResponseDeleted(id=response_id)


@router.post("/{response_id}/cancel", response_model=rs.Response)
async def cancel_response(response_id: str, responses: ResponsesDep, call: CallDep) -> rs.Response:
    return render.response(await responses.cancel(call, response_id))
