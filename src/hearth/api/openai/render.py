"""Neutral results as OpenAI responses: one JSON body, or SSE chunks ending in ``[DONE]``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hearth.api.ids import new_id, now
from hearth.api.openai import protocol as oa
from hearth.api.openai.errors import error_body
from hearth.api.sse import DONE, frame, guarded, json_frame
from hearth.errors import HearthError
from hearth.gateway.streams import GenerationStream
from hearth.inference.events import ChoiceResult, GenerationDone, TextDelta, ToolCallDelta, Usage

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


def _error_frame(error: HearthError) -> bytes:
    return json_frame(error_body(error))


async def chat_stream(stream: GenerationStream, include_usage: bool) -> AsyncIterator[bytes]:
    chunk_id, created, model = new_id("chatcmpl"), now(), stream.model

    def chunk(index: int, delta: oa.ChoiceDelta, finish: str | None = None) -> bytes:
        return frame(
            oa.ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=model,
                system_fingerprint=FINGERPRINT,
                choices=[oa.ChatChunkChoice(index=index, delta=delta, finish_reason=finish)],
            )
        )

    async def body() -> AsyncIterator[bytes]:
        for index in range(stream.choices):
            yield chunk(index, oa.ChoiceDelta(role="assistant", content=""))
        async for index, event in stream:
            if isinstance(event, TextDelta):
                if event.text:
                    yield chunk(index, oa.ChoiceDelta(content=event.text))
            elif isinstance(event, ToolCallDelta):
                delta = oa.ToolCallDelta(
                    index=event.call_index,
                    id=event.id,
                    type="function" if event.id else None,
                    function=oa.FunctionCallDelta(name=event.name, arguments=event.arguments),
                )
                yield chunk(index, oa.ChoiceDelta(tool_calls=[delta]))
            elif isinstance(event, GenerationDone):
                yield chunk(index, oa.ChoiceDelta(), event.finish_reason)
        if include_usage:
            yield frame(
                oa.ChatCompletionChunk(
                    id=chunk_id, created=created, model=model, choices=[], usage=usage(stream.usage)
                )
            )

    async for data in guarded(body(), stream, _error_frame, DONE):
        yield data


async def completion_stream(stream: GenerationStream, include_usage: bool) -> AsyncIterator[bytes]:
    chunk_id, created, model = new_id("cmpl"), now(), stream.model

    def chunk(index: int, text: str, finish: str | None = None) -> bytes:
        return frame(
            oa.Completion(
                id=chunk_id,
                created=created,
                model=model,
                system_fingerprint=FINGERPRINT,
                choices=[oa.CompletionChoice(index=index, text=text, finish_reason=finish)],
            )
        )

    async def body() -> AsyncIterator[bytes]:
        async for index, event in stream:
            if isinstance(event, TextDelta):
                if event.text:
                    yield chunk(index, event.text)
            elif isinstance(event, GenerationDone):
                yield chunk(index, "", event.finish_reason)
        if include_usage:
            yield frame(
                oa.Completion(
                    id=chunk_id, created=created, model=model, choices=[], usage=usage(stream.usage)
                )
            )

    async for data in guarded(body(), stream, _error_frame, DONE):
        yield data
