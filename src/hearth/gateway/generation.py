"""Turn an API request into engine work: prompt tokens, limits of the context, and N choices.

Routes hand over protocol objects; this module owns the policy that is the same for every API
family (OpenAI chat and completions today, Anthropic and Ollama later).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hearth.engines.base import ChatEngine, GenerationDone, GenerationEvent, SamplingParams, TextDelta
from hearth.errors import ContextLengthExceeded, EngineFailure, HearthError, InvalidRequest
from hearth.gateway.context import RequestContext


@dataclass
class GenerationJob:
    engine: ChatEngine
    prompts: list[list[int]]  # one per choice
    params: SamplingParams

    @property
    def worst_case_tokens(self) -> int:
        """What tokens-per-minute limits reserve up front: every prompt plus every max_tokens."""
        return sum(len(p) for p in self.prompts) + self.params.max_tokens * len(self.prompts)


def _tokenize_all(engine: ChatEngine, prompts: Sequence[str | list[int]]) -> list[list[int]]:
    return [engine.tokenize(p) if isinstance(p, str) else list(p) for p in prompts]


def _render_and_tokenize(engine: ChatEngine, messages: list[dict[str, str]]) -> list[int]:
    return engine.tokenize(engine.render_chat(messages))


async def chat_prompt(engine: ChatEngine, messages: list[dict[str, str]]) -> list[int]:
    # Templates and tokenizers are CPU work; keep them off the event loop.
    return await asyncio.to_thread(_render_and_tokenize, engine, messages)


async def completion_prompts(engine: ChatEngine, prompts: Sequence[str | list[int]]) -> list[list[int]]:
    return await asyncio.to_thread(_tokenize_all, engine, prompts)


class SamplingRequest(Protocol):
    """What planning needs from a protocol request (OpenAI, Anthropic, Ollama alike)."""

    logit_bias: dict[str, float] | None

    def requested_max_tokens(self) -> int | None: ...

    def sampling(self, max_tokens: int) -> SamplingParams: ...


def plan(
    engine: ChatEngine, prompts: list[list[int]], request: SamplingRequest, *, chat: bool = False
) -> GenerationJob:
    """Check the prompts against the context and choose max_tokens (default: the rest of it)."""
    ctx = engine.context_length
    if any(not p for p in prompts):
        raise InvalidRequest("the prompt is empty", param="prompt")
    longest = max(len(p) for p in prompts)
    if longest >= ctx:
        raise ContextLengthExceeded(
            f"this model's maximum context length is {ctx} tokens, but the prompt has {longest} tokens",
            param="messages",
        )
    requested = request.requested_max_tokens()
    max_tokens = requested if requested is not None else ctx - longest
    if longest + max_tokens > ctx:
        raise ContextLengthExceeded(
            f"this model's maximum context length is {ctx} tokens; the prompt ({longest} tokens) plus "
            f"max_tokens ({max_tokens}) exceeds it. Reduce the prompt or max_tokens.",
            param="max_tokens",
        )
    if request.logit_bias and not engine.supports_logit_bias:
        raise InvalidRequest("this model does not support logit_bias", param="logit_bias")
    params = request.sampling(max_tokens)
    if chat and engine.chat_stop_sequences():
        stops = tuple(dict.fromkeys((*params.stop, *engine.chat_stop_sequences())))
        params = dataclasses.replace(params, stop=stops)
    return GenerationJob(engine, prompts, params)


@dataclass
class ChoiceResult:
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None


async def stream_choices(
    job: GenerationJob, ctx: RequestContext
) -> AsyncGenerator[tuple[int, GenerationEvent], None]:
    """Events of every choice, tagged by index, accounting tokens into ``ctx`` as they come.

    With one choice this is the engine stream itself; with several, choices run concurrently.
    Closing this iterator cancels every choice still running.
    """
    ctx.prompt_tokens = sum(len(p) for p in job.prompts)
    if len(job.prompts) == 1:
        async with contextlib.aclosing(job.engine.generate(job.prompts[0], job.params)) as events:
            async for event in events:
                _account(ctx, event)
                yield 0, event
        return
    async with contextlib.aclosing(_merge(job)) as merged:
        async for index, event in merged:
            _account(ctx, event)
            yield index, event


def _account(ctx: RequestContext, event: GenerationEvent) -> None:
    if isinstance(event, TextDelta):
        ctx.completion_tokens += event.tokens
        if event.text:
            ctx.mark_first_token()
    elif isinstance(event, GenerationDone):
        ctx.cached_tokens += event.cached_tokens


async def _merge(job: GenerationJob) -> AsyncGenerator[tuple[int, GenerationEvent], None]:
    queue: asyncio.Queue[tuple[int, GenerationEvent] | BaseException | None] = asyncio.Queue()

    async def pump(index: int, prompt: list[int]) -> None:
        try:
            async with contextlib.aclosing(job.engine.generate(prompt, job.params)) as events:
                async for event in events:
                    await queue.put((index, event))
        except Exception as exc:
            await queue.put(exc)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(i, p)) for i, p in enumerate(job.prompts)]
    remaining = len(tasks)
    try:
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def collect(job: GenerationJob, ctx: RequestContext) -> list[ChoiceResult]:
    results = [ChoiceResult() for _ in job.prompts]
    async for index, event in stream_choices(job, ctx):
        if isinstance(event, TextDelta):
            results[index].text.append(event.text)
        else:
            results[index].finish_reason = event.finish_reason
    return results


def as_hearth_error(exc: Exception) -> HearthError:
    """Anything that escapes an engine mid-stream, as an error a client can be shown."""
    if isinstance(exc, HearthError):
        return exc
    return EngineFailure(f"generation failed: {type(exc).__name__}")


class PrimedStream:
    """An event stream whose first event has already been awaited.

    Awaiting the first event before the HTTP response starts lets queue-full, context and load
    errors surface as real status codes instead of as an error inside a 200 stream.
    """

    def __init__(self, events: AsyncGenerator[tuple[int, GenerationEvent], None]) -> None:
        self._events = events
        self._first: tuple[int, GenerationEvent] | None = None

    async def prime(self) -> PrimedStream:
        try:
            self._first = await anext(self._events)
        except BaseException:
            await self._events.aclose()
            raise
        return self

    def __aiter__(self) -> PrimedStream:
        return self

    async def __anext__(self) -> tuple[int, GenerationEvent]:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()
