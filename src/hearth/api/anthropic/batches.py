"""Anthropic's Message Batches: ``POST /v1/messages/batches`` (``requests`` of ``custom_id`` and
``params``), ``GET /v1/messages/batches[/{id}]``, ``POST .../{id}/cancel``, ``GET
.../{id}/results`` (JSONL of ``succeeded``, ``errored``, ``canceled`` and ``expired``
results) and ``DELETE .../{id}``, in Anthropic's shapes. They run as OpenAI's batches do
(``gateway/batches.py``); ``execute_message`` answers one request as ``/v1/messages`` would."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from hearth.api.anthropic import mapper, render
from hearth.api.anthropic import protocol as an
from hearth.api.anthropic.errors import ANTHROPIC
from hearth.api.deps import READS_STATE_ROUTE, REQUIRE_KEY, BatchesDep, CallDep
from hearth.errors import HearthError, InvalidRequest
from hearth.gateway.call import Call
from hearth.gateway.service import Gateway
from hearth.store.batches import BatchView

router = APIRouter(prefix="/v1/messages/batches", tags=["Anthropic"], dependencies=[REQUIRE_KEY])
MAX_REQUESTS = 100_000  # Anthropic's limit per batch


class BatchRequest(BaseModel):
    custom_id: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    params: dict[str, Any]


class CreateBody(BaseModel):
    requests: list[BatchRequest] = Field(min_length=1, max_length=MAX_REQUESTS)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def batch_object(view: BatchView, base_url: str) -> dict[str, Any]:
    ended = view.status in ("completed", "failed", "cancelled", "expired")
    status = "ended" if ended else "canceling" if view.status == "cancelling" else "in_progress"
    unrun = max(0, view.total - view.completed - view.failed)
    counts = {
        "processing": 0 if ended else unrun,
        "succeeded": view.completed,
        "errored": view.failed + (unrun if view.status == "failed" else 0),
        "canceled": unrun if view.status == "cancelled" else 0,
        "expired": unrun if view.status == "expired" else 0,
    }
    times = view.times
    ended_at = times["completed_at"] or times["cancelled_at"] or times["expired_at"] or times["failed_at"]
    return {
        "id": view.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": _time(ended_at),
        "created_at": _time(times["created_at"]),
        "expires_at": _time(times["expires_at"]),
        "archived_at": None,
        "cancel_initiated_at": _time(times["cancelling_at"]),
        "results_url": f"{base_url}/v1/messages/batches/{view.id}/results" if ended else None,
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("", summary="Create a message batch")
async def create(body: CreateBody, request: Request, batches: BatchesDep, call: CallDep) -> dict[str, Any]:
    ids = [r.custom_id for r in body.requests]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("custom_id values must be unique within a batch", param="requests")
    made = await batches.create_messages(call, [(r.custom_id, r.params) for r in body.requests])
    return batch_object(made, _base(request))


@router.get("", summary="List your message batches", openapi_extra=READS_STATE_ROUTE)
async def list_batches(
    request: Request,
    batches: BatchesDep,
    call: CallDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    after_id: str | None = None,
) -> dict[str, Any]:
    page, more = await batches.page(call, limit, after_id)
    data = [batch_object(v, _base(request)) for v in page if v.endpoint == "/v1/messages"]
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/{batch_id}", summary="A message batch", openapi_extra=READS_STATE_ROUTE)
async def retrieve(batch_id: str, request: Request, batches: BatchesDep, call: CallDep) -> dict[str, Any]:
    return batch_object(await batches.get(call, batch_id), _base(request))


@router.post("/{batch_id}/cancel", summary="Cancel a message batch")
async def cancel(batch_id: str, request: Request, batches: BatchesDep, call: CallDep) -> dict[str, Any]:
    return batch_object(await batches.cancel(call, batch_id), _base(request))


@router.delete("/{batch_id}", summary="Delete an ended message batch")
async def delete(batch_id: str, batches: BatchesDep, call: CallDep) -> dict[str, Any]:
    await batches.delete(call, batch_id)
    return {"id": batch_id, "type": "message_batch_deleted"}


@router.get(
    "/{batch_id}/results",
    summary="A message batch's results (JSONL)",
    response_class=Response,
    openapi_extra=READS_STATE_ROUTE,
)
async def results(batch_id: str, batches: BatchesDep, call: CallDep) -> Response:
    batch = await batches.get(call, batch_id)
    if batch.status not in ("completed", "failed", "cancelled", "expired"):
        raise InvalidRequest(
            f"batch {batch_id} has not ended yet: its results are not ready", param="batch_id"
        )
    rows = [
        json.dumps({"custom_id": r["custom_id"], "result": _result(r)})
        for r in await batches.results(call, batch_id)
    ]
    return Response("".join(row + "\n" for row in rows), media_type="application/x-jsonl")


def _result(line: dict[str, Any]) -> dict[str, Any]:
    response = line.get("response")
    if response is None:
        code = str((line.get("error") or {}).get("code"))
        return {"type": {"batch_cancelled": "canceled", "batch_expired": "expired"}.get(code, "errored")}
    if response["status_code"] < 400:
        return {"type": "succeeded", "message": response["body"]}
    return {"type": "errored", "error": response["body"]}


async def execute_message(gateway: Gateway, call: Call, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One request of a message batch, answered whole as ``/v1/messages`` would."""
    path = "/v1/messages"
    try:
        params = an.MessagesRequest.model_validate({**body, "stream": False})
        stream = await gateway.chat(call, mapper.chat_request(params))
        return 200, render.message(stream, await stream.collect()).model_dump(mode="json", exclude_none=True)
    except (ValidationError, HearthError) as exc:
        return ANTHROPIC.line_failure(exc, path)
