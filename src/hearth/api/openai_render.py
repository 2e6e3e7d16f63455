"""Render engine results as OpenAI chat/completion responses: one JSON body, or SSE chunks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hearth.api.sse import DONE, error_frame, frame
from hearth.engines.base import GenerationDone, GenerationEvent, TextDelta
from hearth.gateway.context import RequestContext
from hearth.gateway.generation import ChoiceResult, as_hearth_error
from hearth.protocol import openai as oa

FINGERPRINT = "fp_hearth"


def usage_of(ctx: RequestContext) -> oa.Usage:
    return oa.Usage(
        prompt_tokens=ctx.prompt_tokens,
        completion_tokens=ctx.completion_tokens,
        total_tokens=ctx.total_tokens,
        prompt_tokens_details=oa.PromptTokensDetails(cached_tokens=ctx.cached_tokens),
    )


def chat_completion(model: str, results: list[ChoiceResult], ctx: RequestContext) -> oa.ChatCompletion:
    return oa.ChatCompletion(
        id=oa.new_id("chatcmpl"),
        created=oa.now(),
        model=model,
        system_fingerprint=FINGERPRINT,
        choices=[
            oa.ChatChoice(
                index=i, message=oa.AssistantMessage(content="".join(r.text)), finish_reason=r.finish_reason
            )
            for i, r in enumerate(results)
        ],
        usage=usage_of(ctx),
    )


def completion(model: str, results: list[ChoiceResult], ctx: RequestContext) -> oa.Completion:
    return oa.Completion(
        id=oa.new_id("cmpl"),
        created=oa.now(),
        model=model,
        system_fingerprint=FINGERPRINT,
        choices=[
            oa.CompletionChoice(index=i, text="".join(r.text), finish_reason=r.finish_reason)
            for i, r in enumerate(results)
        ],
        usage=usage_of(ctx),
    )


async def chat_stream(
    model: str,
    choices: int,
    events: AsyncIterator[tuple[int, GenerationEvent]],
    ctx: RequestContext,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    chunk_id, created = oa.new_id("chatcmpl"), oa.now()

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
        for index in range(choices):
            yield chunk(index, oa.ChoiceDelta(role="assistant", content=""))
        async for index, event in events:
            if isinstance(event, TextDelta):
                if event.text:
                    yield chunk(index, oa.ChoiceDelta(content=event.text))
            elif isinstance(event, GenerationDone):
                yield chunk(index, oa.ChoiceDelta(), event.finish_reason)
        if include_usage:
            yield frame(
                oa.ChatCompletionChunk(
                    id=chunk_id, created=created, model=model, choices=[], usage=usage_of(ctx)
                )
            )

    async for data in _guarded(body(), events, ctx):
        yield data


async def completion_stream(
    model: str,
    events: AsyncIterator[tuple[int, GenerationEvent]],
    ctx: RequestContext,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    chunk_id, created = oa.new_id("cmpl"), oa.now()

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
        async for index, event in events:
            if isinstance(event, TextDelta):
                if event.text:
                    yield chunk(index, event.text)
            elif isinstance(event, GenerationDone):
                yield chunk(index, "", event.finish_reason)
        if include_usage:
            yield frame(
                oa.Completion(id=chunk_id, created=created, model=model, choices=[], usage=usage_of(ctx))
            )

    async for data in _guarded(body(), events, ctx):
        yield data


async def _guarded(
    body: AsyncIterator[bytes], events: AsyncIterator[tuple[int, GenerationEvent]], ctx: RequestContext
) -> AsyncIterator[bytes]:
    """Run a stream body; a failure becomes an error frame, and the stream still ends with [DONE].

    However the stream ends (done, failed, or the client gone), the engine stream is closed, which
    cancels generation at once.
    """
    try:
        async for data in body:
            yield data
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error = as_hearth_error(exc)
        ctx.error_type = error.code or error.error_type
        ctx.failed_status = error.status_code
        yield error_frame(error)
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
    yield DONE
