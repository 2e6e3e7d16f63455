"""Responses API routes: create, retrieve, input items, delete and cancel under ``/v1/responses``.

Each route parses its request, calls the gateway's responses service, and renders the result.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from hearth.api.deps import REQUIRE_KEY, CallDep, ResponsesDep
from hearth.api.openai.responses import mapper, render
from hearth.api.openai.responses import protocol as rs
from hearth.api.openai.responses.errors import RESPONSES, how_to_fit
from hearth.api.serving import respond
from hearth.errors import HearthError, InvalidRequest, Unsupported
from hearth.gateway.call import Call
from hearth.gateway.response_runs import ResponseRun
from hearth.gateway.responses import Responses

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


async def execute_response(
    responses: Responses, call: Call, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """One line of a ``/v1/responses`` batch, answered whole as the route would (never streamed,
    never in the background: the batch is the background)."""
    path = "/v1/responses"
    try:
        if body.get("background"):
            raise InvalidRequest("a batch line runs in the background already: leave background unset",
                                 param="background")  # fmt: skip
        new = mapper.new_response(rs.ResponseCreate.model_validate({**body, "stream": False}))
        with how_to_fit(new):
            record = await (await responses.create(call, new)).collect()
        return 200, render.response(record).model_dump(mode="json")
    except (ValidationError, HearthError) as exc:
        return RESPONSES.line_failure(exc, path)
