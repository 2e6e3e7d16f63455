"""OpenAI's Batch API: ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/batches``
(``limit``, ``after``) and ``POST /v1/batches/{id}/cancel``, in OpenAI's shapes; and
``execute_line``, which runs one line of a batch the way the family's own route would (its
mappers and renderers), for the runner (``gateway/batches.py``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, ValidationError

from hearth.api.anthropic.batches import execute_message
from hearth.api.deps import READS_STATE_ROUTE, REQUIRE_KEY, BatchesDep, CallDep
from hearth.api.openai import mapper, render
from hearth.api.openai import protocol as oa
from hearth.api.openai.errors import OPENAI
from hearth.api.openai.responses.routes import execute_response
from hearth.errors import HearthError
from hearth.gateway.batches import MESSAGES, Execute, embed_lines
from hearth.gateway.call import Call
from hearth.gateway.responses import Responses
from hearth.gateway.service import Gateway
from hearth.inference.types import EmbedRequest
from hearth.store.batches import BatchView

router = APIRouter(prefix="/v1/batches", tags=["OpenAI"], dependencies=[REQUIRE_KEY])


class BatchBody(BaseModel):
    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


def _stamp(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def batch_object(view: BatchView) -> dict[str, Any]:
    errors = None if not view.errors else {"object": "list", "data": view.errors}
    return {
        "id": view.id,
        "object": "batch",
        "endpoint": view.endpoint,
        "errors": errors,
        "input_file_id": view.input_file_id,
        "completion_window": view.completion_window,
        "status": view.status,
        "output_file_id": view.output_file_id,
        "error_file_id": view.error_file_id,
        **{name: _stamp(value) for name, value in view.times.items()},
        "request_counts": {"total": view.total, "completed": view.completed, "failed": view.failed},
        "metadata": view.metadata,
    }


@router.post("", summary="Create a batch")
async def create(body: BatchBody, batches: BatchesDep, call: CallDep) -> dict[str, Any]:
    made = await batches.create(
        call, body.input_file_id, body.endpoint, body.completion_window, body.metadata
    )
    return batch_object(made)


@router.get("", summary="List your batches", openapi_extra=READS_STATE_ROUTE)
async def list_batches(
    batches: BatchesDep,
    call: CallDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> dict[str, Any]:
    page, more = await batches.page(call, limit, after)
    data = [batch_object(v) for v in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/{batch_id}", summary="A batch and its progress", openapi_extra=READS_STATE_ROUTE)
async def retrieve(batch_id: str, batches: BatchesDep, call: CallDep) -> dict[str, Any]:
    return batch_object(await batches.get(call, batch_id))


@router.post("/{batch_id}/cancel", summary="Cancel a batch")
async def cancel(batch_id: str, batches: BatchesDep, call: CallDep) -> dict[str, Any]:
    return batch_object(await batches.cancel(call, batch_id))


def line_executor(gateway: Gateway, responses: Responses) -> Execute:
    """Runs a group of batch lines by their endpoint, bound to the services, for the runner
    (``app.py`` wires it): OpenAI's routes here, the Responses API's in its routes, Anthropic's
    Messages in ``api/anthropic/batches.py``. Embedding lines share engine calls."""

    async def one(call: Call, endpoint: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if endpoint == MESSAGES:
            return await execute_message(gateway, call, body)
        if endpoint == "/v1/responses":
            return await execute_response(responses, call, body)
        return await execute_line(gateway, call, endpoint, body)

    async def execute(
        calls: list[Call], endpoint: str, bodies: list[dict[str, Any]]
    ) -> list[tuple[int, dict[str, Any]]]:
        if endpoint == "/v1/embeddings" and len(calls) > 1:
            return await execute_embeddings(gateway, calls, bodies)
        return list(await asyncio.gather(*(one(c, endpoint, b) for c, b in zip(calls, bodies, strict=True))))

    return execute


async def execute_embeddings(
    gateway: Gateway, calls: list[Call], bodies: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """Embedding lines that ask one model for one format, in one engine call; each line still
    gets its own answer and usage. A line the route would refuse, or a shared call that fails,
    runs alone, so each line gets the answer (or error) it would get by itself."""
    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    groups: dict[tuple[str, str, int | None], list[tuple[int, oa.EmbeddingRequest, EmbedRequest]]] = {}
    for i, body in enumerate(bodies):
        try:
            embed = _embedding_body(body)
            request = mapper.embed_request(embed)
        except (ValidationError, HearthError):
            answers[i] = await execute_line(gateway, calls[i], "/v1/embeddings", body)
            continue
        groups.setdefault((request.model, embed.encoding_format, request.dimensions), []).append(
            (i, embed, request)
        )
    for members in groups.values():
        try:
            parts = await embed_lines(gateway, [calls[i] for i, _, _ in members], [r for _, _, r in members])
        except HearthError:
            for i, _, _ in members:
                answers[i] = await execute_line(gateway, calls[i], "/v1/embeddings", bodies[i])
            continue
        for (i, embed, _), part in zip(members, parts, strict=True):
            answers[i] = (200, render.embeddings(embed, part).model_dump(mode="json"))
    return [answers[i] for i in range(len(bodies))]


def _embedding_body(body: dict[str, Any]) -> oa.EmbeddingRequest:
    return oa.EmbeddingRequest.model_validate(
        {k: v for k, v in body.items() if k not in {"stream", "priority"}}
    )


async def execute_line(
    gateway: Gateway, call: Call, endpoint: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """One line's request as its route would answer it, whole (a batch line never streams)."""
    try:
        return 200, await _answer(gateway, call, endpoint, {**body, "stream": False})
    except (ValidationError, HearthError) as exc:
        return OPENAI.line_failure(exc, endpoint)


async def _answer(gateway: Gateway, call: Call, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    if endpoint == "/v1/chat/completions":
        chat = oa.ChatCompletionRequest.model_validate(body)
        stream = await gateway.chat(call, mapper.chat_request(chat))
        return render.chat_completion(stream, await stream.collect()).model_dump(
            mode="json", exclude_none=True
        )
    if endpoint == "/v1/completions":
        completion = oa.CompletionRequest.model_validate(body)
        stream = await gateway.complete(call, mapper.completion_request(completion))
        return render.completion(stream, await stream.collect()).model_dump(mode="json", exclude_none=True)
    embed = _embedding_body(body)
    result = await gateway.embed(call, mapper.embed_request(embed))
    reply: dict[str, Any] = render.embeddings(embed, result).model_dump(mode="json")
    return reply
