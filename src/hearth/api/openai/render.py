"""Neutral results as OpenAI responses: one JSON body, or SSE chunks ending in ``[DONE]``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from hearth.api.ids import new_id, now
from hearth.api.openai import protocol as oa
from hearth.api.openai.errors import OPENAI
from hearth.api.sse import DONE, frame, guarded, json_frame
from hearth.errors import HearthError
from hearth.gateway.streams import GenerationStream
from hearth.inference.events import (
    ChoiceEvent,
    ChoiceResult,
    EmbedResult,
    GenerationDone,
    TextDelta,
    ToolCallDelta,
    Usage,
)

FINGERPRINT = "fp_hearth"


def usage(value: Usage) -> oa.Usage:
    return oa.Usage(
        prompt_tokens=value.prompt_tokens,
        completion_tokens=value.completion_tokens,
        total_tokens=value.total_tokens,
        prompt_tokens_details=oa.PromptTokensDetails(cached_tokens=value.cached_tokens),
    )


def _message(result: ChoiceResult) -> oa.AssistantMessage:
    calls = [
        oa.ToolCall(id=c.id, function=oa.FunctionCall(name=c.name, arguments=c.arguments))
        for c in result.tool_calls
    ]
    # With tool calls and no text, content is null, as OpenAI sends it.
    content = result.text if result.text or not calls else None
    return oa.AssistantMessage(content=content, tool_calls=calls or None)


def chat_completion(stream: GenerationStream, results: list[ChoiceResult]) -> oa.ChatCompletion:
    return oa.ChatCompletion(
        id=new_id("chatcmpl"),
        created=now(),
        model=stream.model,
        system_fingerprint=FINGERPRINT,
        choices=[
            oa.ChatChoice(index=i, message=_message(r), finish_reason=r.finish_reason)
            for i, r in enumerate(results)
        ],
        usage=usage(stream.usage),
    )


def completion(stream: GenerationStream, results: list[ChoiceResult]) -> oa.Completion:
    return oa.Completion(
        id=new_id("cmpl"),
        created=now(),
        model=stream.model,
        system_fingerprint=FINGERPRINT,
        choices=[
            oa.CompletionChoice(index=i, text=r.text, finish_reason=r.finish_reason)
            for i, r in enumerate(results)
        ],
        usage=usage(stream.usage),
    )


def _error_frame(path: str) -> Callable[[HearthError], bytes]:
    return lambda error: json_frame(OPENAI.error_body(error, path))


Chunk = oa.ChatCompletionChunk | oa.Completion


async def _chunks(
    stream: GenerationStream,
    include_usage: bool,
    envelope: type[Chunk],
    path: str,
    choice: Callable[[int, ChoiceEvent], Any],
    opening: Callable[[int], Any] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body both OpenAI streams share: one chunk per choice event (``choice`` builds
    its choice, or None to send nothing), the usage chunk if asked for, then ``[DONE]``."""
    chunk_id, created, model = (
        new_id("chatcmpl" if envelope is oa.ChatCompletionChunk else "cmpl"),
        now(),
        stream.model,
    )

    # OpenAI's chat chunks carry ``usage: null`` until the last only when usage was asked for;
    # its completion chunks (and chat chunks otherwise) leave the key out.
    null_usage = include_usage and envelope is oa.ChatCompletionChunk

    def chunk(choices: list[Any], used: Usage | None = None) -> bytes:
        return frame(
            envelope(
                id=chunk_id,
                created=created,
                model=model,
                choices=choices,
                usage=None if used is None else usage(used),
                system_fingerprint=FINGERPRINT,
            ),
            exclude=None if used is not None or null_usage else {"usage"},
        )

    async def body() -> AsyncIterator[bytes]:
        if opening is not None:
            for index in range(stream.choices):
                yield chunk([opening(index)])
        async for index, event in stream:
            if (built := choice(index, event)) is not None:
                yield chunk([built])
        if include_usage:
            yield chunk([], stream.usage)

    async for data in guarded(body(), stream, _error_frame(path), DONE):
        yield data


def _chat_choice(index: int, event: ChoiceEvent) -> oa.ChatChunkChoice | None:
    if isinstance(event, TextDelta):
        return (
            oa.ChatChunkChoice(index=index, delta=oa.ChoiceDelta(content=event.text)) if event.text else None
        )
    if isinstance(event, ToolCallDelta):
        delta = oa.ToolCallDelta(
            index=event.call_index,
            id=event.id,
            type="function" if event.id else None,
            function=oa.FunctionCallDelta(name=event.name, arguments=event.arguments),
        )
        return oa.ChatChunkChoice(index=index, delta=oa.ChoiceDelta(tool_calls=[delta]))
    return oa.ChatChunkChoice(index=index, delta=oa.ChoiceDelta(), finish_reason=event.finish_reason)


def _completion_choice(index: int, event: ChoiceEvent) -> oa.CompletionChoice | None:
    if isinstance(event, TextDelta):
        return oa.CompletionChoice(index=index, text=event.text, finish_reason=None) if event.text else None
    if isinstance(event, GenerationDone):
        return oa.CompletionChoice(index=index, text="", finish_reason=event.finish_reason)
    return None


def chat_stream(stream: GenerationStream, include_usage: bool) -> AsyncIterator[bytes]:
    def opening(index: int) -> oa.ChatChunkChoice:
        return oa.ChatChunkChoice(index=index, delta=oa.ChoiceDelta(role="assistant", content=""))

    return _chunks(
        stream, include_usage, oa.ChatCompletionChunk, "/v1/chat/completions", _chat_choice, opening
    )


def completion_stream(stream: GenerationStream, include_usage: bool) -> AsyncIterator[bytes]:
    return _chunks(stream, include_usage, oa.Completion, "/v1/completions", _completion_choice)


def embeddings(body: oa.EmbeddingRequest, result: EmbedResult) -> oa.EmbeddingResponse:
    data = [
        oa.EmbeddingData.model_construct(
            index=i, embedding=_encode(v, body.encoding_format), object="embedding"
        )
        for i, v in enumerate(result.vectors)
    ]
    tokens = sum(result.token_counts)
    usage = oa.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
    return oa.EmbeddingResponse.model_construct(data=data, model=body.model, usage=usage, object="list")


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as the OpenAI SDKs decode it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    floats: list[float] = vector.astype(float).tolist()
    return floats
