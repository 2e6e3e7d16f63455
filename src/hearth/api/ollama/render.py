"""Neutral results as Ollama answers: NDJSON chunks ending in a ``done`` object, or one JSON object.

Every chunk carries ``model`` (the name as the caller wrote it, tag included) and ``created_at``
(RFC 3339, UTC); the final object adds ``done_reason`` and the counts and timings, in
nanoseconds. ``load_duration`` is the time this request waited for its model to load (after
keep_alive let it go; 0 when it was loaded); ``prompt_eval_duration`` runs from the request's
arrival to its first token and ``eval_duration`` from there to the end.
A failure after the first chunk ends the stream with an ``{"error": ...}`` line, as Ollama's does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

from hearth.api.ollama import protocol as ol
from hearth.api.ollama.errors import error_line
from hearth.api.sse import guarded, ndjson_line
from hearth.errors import HearthError
from hearth.gateway.call import Call
from hearth.gateway.streams import GenerationStream
from hearth.inference.events import (
    ChoiceResult,
    EmbedResult,
    GenerationDone,
    TextDelta,
    ToolCallDelta,
    add_call_delta,
)
from hearth.inference.types import ToolCall


def created_at() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))


def done_reason(finish: str | None) -> str:
    """Ollama knows ``stop`` and ``length``; a turn that ended in tool calls stopped."""
    return "length" if finish == "length" else "stop"


def metrics(stream: GenerationStream) -> ol.Metrics:
    call, end = stream.call, time.perf_counter()
    first = call.metering.first_token_at or end
    usage = stream.usage
    return ol.Metrics(
        total_duration=_ns(end - call.started),
        load_duration=_ns(call.metering.load_seconds),
        prompt_eval_count=usage.prompt_tokens,
        prompt_eval_duration=_ns(first - call.started),
        eval_count=usage.completion_tokens,
        eval_duration=_ns(end - first),
    )


def _arguments(text: str) -> dict[str, Any]:
    # Tool calls come from constrained decoding, so their arguments are a JSON object.
    parsed = json.loads(text or "{}")
    return parsed if isinstance(parsed, dict) else {}


def _tool_calls(calls: list[ToolCall]) -> list[ol.ToolCall] | None:
    listed = [
        ol.ToolCall(id=c.id, function=ol.FunctionCall(name=c.name, arguments=_arguments(c.arguments)))
        for c in calls
    ]
    return listed or None


def _message(text: str, calls: list[ToolCall] | None = None) -> ol.AssistantMessage:
    return ol.AssistantMessage(content=text, tool_calls=_tool_calls(calls or []))


def _final(chunk: ol.ChatChunk | ol.GenerateChunk, stream: GenerationStream) -> dict[str, Any]:
    return {**chunk.model_dump(exclude_none=True), **metrics(stream).model_dump()}


def chat_response(model: str, stream: GenerationStream, result: ChoiceResult) -> JSONResponse:
    chunk = ol.ChatChunk(
        model=model,
        created_at=created_at(),
        message=_message(result.text, result.tool_calls),
        done=True,
        done_reason=done_reason(result.finish_reason),
    )
    return JSONResponse(_final(chunk, stream))


def generate_response(model: str, stream: GenerationStream, result: ChoiceResult) -> JSONResponse:
    chunk = ol.GenerateChunk(
        model=model,
        created_at=created_at(),
        response=result.text,
        done=True,
        done_reason=done_reason(result.finish_reason),
    )
    return JSONResponse(_final(chunk, stream))


def _error_frame(path: str) -> Callable[[HearthError], bytes]:
    return lambda error: ndjson_line(error_line(error, path))


Chunk = ol.ChatChunk | ol.GenerateChunk


async def _lines(
    stream: GenerationStream,
    piece: Callable[[str, list[ToolCall]], Chunk],
    last: Callable[[GenerationDone], Chunk],
    path: str,
) -> AsyncIterator[bytes]:
    """The NDJSON body both Ollama streams share: a chunk per text piece, the tool calls whole in
    a chunk of their own (as Ollama sends them), then the final chunk with the counts."""

    async def body() -> AsyncIterator[bytes]:
        calls: list[ToolCall] = []
        done = GenerationDone("stop", 0, 0)
        async for _, event in stream:
            if isinstance(event, TextDelta):
                if event.text:
                    yield ndjson_line(piece(event.text, []).model_dump(exclude_none=True))
            elif isinstance(event, ToolCallDelta):
                add_call_delta(calls, event)
            else:
                done = event
        if calls:
            yield ndjson_line(piece("", calls).model_dump(exclude_none=True))
        yield ndjson_line(_final(last(done), stream))

    async for data in guarded(body(), stream, _error_frame(path)):
        yield data


def chat_stream(model: str, stream: GenerationStream) -> AsyncIterator[bytes]:
    def piece(text: str, calls: list[ToolCall]) -> Chunk:
        return ol.ChatChunk(model=model, created_at=created_at(), message=_message(text, calls), done=False)

    def last(done: GenerationDone) -> Chunk:
        return ol.ChatChunk(
            model=model,
            created_at=created_at(),
            message=_message(""),
            done=True,
            done_reason=done_reason(done.finish_reason),
        )

    return _lines(stream, piece, last, "/api/chat")


def generate_stream(model: str, stream: GenerationStream) -> AsyncIterator[bytes]:
    def piece(text: str, _calls: list[ToolCall]) -> Chunk:
        return ol.GenerateChunk(model=model, created_at=created_at(), response=text, done=False)

    def last(done: GenerationDone) -> Chunk:
        return ol.GenerateChunk(
            model=model,
            created_at=created_at(),
            response="",
            done=True,
            done_reason=done_reason(done.finish_reason),
        )

    return _lines(stream, piece, last, "/api/generate")


LoadReason = Literal["load", "unload"]


def loaded(model: str, chat: bool, reason: LoadReason = "load") -> JSONResponse:
    """The answer to an empty chat or prompt: the model was loaded (``load``), or, with
    ``keep_alive: 0``, let go (``unload``), as Ollama answers both."""
    body: Chunk
    if chat:
        body = ol.ChatChunk(
            model=model, created_at=created_at(), message=_message(""), done=True, done_reason=reason
        )
    else:
        body = ol.GenerateChunk(
            model=model, created_at=created_at(), response="", done=True, done_reason=reason
        )
    return JSONResponse(body.model_dump(exclude_none=True))


def embed_response(model: str, call: Call, result: EmbedResult | None) -> Response:
    # Serialised once here: a response_model would re-validate every float.
    payload = {
        "model": model,
        "embeddings": [] if result is None else result.vectors.astype(float).tolist(),
        "total_duration": _ns(time.perf_counter() - call.started),
        "load_duration": _ns(call.metering.load_seconds),
        "prompt_eval_count": 0 if result is None else sum(result.token_counts),
    }
    return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")


def embeddings_response(result: EmbedResult | None) -> Response:
    vector = [] if result is None else result.vectors[0].astype(float).tolist()
    return Response(json.dumps({"embedding": vector}, separators=(",", ":")), media_type="application/json")
