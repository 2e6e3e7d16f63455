"""A request's generation as one stream of ``(choice index, event)``, accounted as it goes.

The stream is *primed*: its first event is awaited before the HTTP response starts, so
queue-full, context and load errors surface as real status codes rather than as an error
inside a 200 stream. Tokens, time to first token and a failure are written into the ``Call``
here, once for every family; renderers only read ``usage``. Closing the stream (done, failed,
or the client gone) cancels every choice still generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from hearth import tracing
from hearth.errors import HearthError, as_hearth_error
from hearth.gateway.call import Call
from hearth.gateway.jobs import Indexed, Job
from hearth.gateway.tool_stream import AnswerInstead
from hearth.inference.events import (
    ChoiceEvent,
    ChoiceResult,
    GenerationDone,
    TextDelta,
    ToolCallDelta,
    UpstreamEvent,
    Usage,
    UsageReport,
    add_call_delta,
)

# Rewrites one choice's events (tool-call parsing); gets the choice index, returns a filter.
ChoiceFilter = Callable[[ChoiceEvent], list[ChoiceEvent | AnswerInstead]]


class GenerationStream:
    def __init__(
        self,
        call: Call,
        job: Job,
        *,
        model: str,
        filters: Callable[[int], ChoiceFilter] | None = None,
        on_finish: Callable[[list[ChoiceResult]], None] | None = None,
        on_end: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.call = call
        self.model = model  # the name the caller asked for, as its family echoes it back
        self.choices = job.choices
        self.prompt_tokens = job.prompt_tokens
        self.error: HearthError | None = None
        self._job = job
        self._make_filter = filters
        self._filters = [filters(i) for i in range(self.choices)] if filters else None
        self._answering = False  # generating again in text (tool_stream.AnswerInstead)
        self._cache_counted: set[int] = set()  # choices whose cache reads are counted
        # Traces: the request's span, and when the engine queued, prefilled and decoded.
        self._trace_parent = tracing.current_context()
        self._began_ns = time.time_ns()
        self._queued_ns: int | None = None
        self._first_ns: int | None = None
        self._ended = 0
        self._caller_stops = set(job.caller_stops)
        self._pending: list[Indexed] = []
        self._events = self._run()
        # Whole choices are kept only for a listener that wants them (a shadow comparison).
        self._on_finish = on_finish
        self._texts: list[list[str]] | None = [[] for _ in range(self.choices)] if on_finish else None
        self._done = 0
        # Runs once generation has ended, before the caller sees the end (a durable ledger row).
        self._on_end = on_end
        call.metering.prompt_tokens = job.prompt_tokens

    @property
    def usage(self) -> Usage:
        return self.call.usage

    async def prime(self) -> GenerationStream:
        try:
            self._pending.extend(await self._next_batch())
        except BaseException:
            await self.aclose()
            raise
        return self

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> Indexed:
        while not self._pending:
            self._pending.extend(await self._next_batch())
        return self._pending.pop(0)

    async def _next_batch(self) -> list[Indexed]:
        try:
            item = await anext(self._events)
            while isinstance(item, UsageReport):  # the upstream's own count replaces ours
                self._report(item)
                item = await anext(self._events)
            index, event = item
        except StopAsyncIteration:
            if self._on_end is not None:
                end, self._on_end = self._on_end, None
                await end()
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = as_hearth_error(exc)
            self.call.metering.error_label = self.error.label
            self.call.metering.failed_status = self.error.status_code
            raise self.error from exc
        self._account(index, event)
        event = self._public(event)
        if self._filters is None:
            self._keep(index, event)
            return [(index, event)]
        out: list[Indexed] = []
        again = False
        for filtered in self._filters[index](event):
            if not isinstance(filtered, AnswerInstead):
                out.append((index, filtered))
            elif not (again := await self._answer_again(index)):
                out.extend((index, e) for e in filtered.fallback)
        if again and self._texts is not None:
            self._texts[index] = []  # a shadow compares the text answer, not the repeated call
        else:
            self._keep(index, event)
        return out

    async def _answer_again(self, index: int) -> bool:
        """The model only repeated calls it has results for: it answers in text instead, the
        same prompt again (its cells are cached) under a grammar without calls. Its first
        tokens stay counted; the prompt is counted once, with the first pass's cached share."""
        again = self._job.answer_events(self.call.metering.completion_tokens)
        if again is None or self._make_filter is None or self._filters is None:
            return False
        await self._events.aclose()
        self._events, self._answering = _indexed(again), True
        self._filters[index] = self._make_filter(index)
        return True

    def _keep(self, index: int, event: ChoiceEvent) -> None:
        if self._texts is None:
            return
        if isinstance(event, TextDelta):
            self._texts[index].append(event.text)
        elif isinstance(event, GenerationDone):
            self._done += 1
            if self._done == self.choices and self._on_finish is not None:
                finish, self._on_finish = self._on_finish, None
                finish([ChoiceResult(text="".join(t)) for t in self._texts])

    def _account(self, index: int, event: ChoiceEvent) -> None:
        meter = self.call.metering
        if isinstance(event, TextDelta):
            meter.completion_tokens += event.tokens
            if event.text:
                self.call.mark_first_token()
                self._first_ns = self._first_ns or time.time_ns()
            if event.cached_tokens is not None:
                self._count_cache(index, event.cached_tokens)
            if event.queued_s is not None and self._queued_ns is None:
                self._queued_ns = int(event.queued_s * 1e9)
        elif isinstance(event, GenerationDone):
            self._count_cache(index, event.cached_tokens)
            self._ended += 1
            if self._ended == self.choices:
                self._trace_phases()

    def _trace_phases(self) -> None:
        """The engine's queue wait, prefill and decode, as spans of the request's trace."""
        end = time.time_ns()
        first = self._first_ns or end
        admitted = min(first, self._began_ns + (self._queued_ns or 0))
        parent = self._trace_parent
        tracing.timed_span("queue", self._began_ns, admitted, parent)
        tracing.timed_span("prefill", admitted, first, parent)
        tracing.timed_span("decode", first, end, parent)

    def _count_cache(self, index: int, cached: int) -> None:
        """A choice's cache reads and writes, once: from its first piece or else its end."""
        if self._answering or index in self._cache_counted:
            return
        self._cache_counted.add(index)
        meter = self.call.metering
        meter.cached_tokens += cached
        meter.cache_write_tokens += max(0, meter.cache_point - cached)

    def _report(self, usage: UsageReport) -> None:
        meter = self.call.metering
        meter.prompt_tokens = usage.prompt_tokens
        meter.completion_tokens = usage.completion_tokens
        meter.cached_tokens = usage.cached_tokens
        meter.cache_write_tokens = usage.cache_write_tokens

    def _public(self, event: ChoiceEvent) -> ChoiceEvent:
        """Only the caller's own stop strings are reported as the reason a choice stopped."""
        if isinstance(event, GenerationDone) and event.stop_sequence not in self._caller_stops:
            return GenerationDone(
                event.finish_reason, event.prompt_tokens, event.completion_tokens, event.cached_tokens, None
            )
        return event

    async def _run(self) -> AsyncGenerator[UpstreamEvent, None]:
        async with contextlib.aclosing(self._job.events()) as events:
            async for item in events:
                yield item

    async def aclose(self) -> None:
        await self._events.aclose()

    async def collect(self) -> list[ChoiceResult]:
        """Every choice whole (for non-streaming answers); the stream is closed afterwards."""
        results = [ChoiceResult() for _ in range(self.choices)]
        text: list[list[str]] = [[] for _ in range(self.choices)]
        try:
            async for index, event in self:
                result = results[index]
                if isinstance(event, TextDelta):
                    text[index].append(event.text)
                elif isinstance(event, ToolCallDelta):
                    add_call_delta(result.tool_calls, event)
                else:
                    result.finish_reason, result.stop_sequence = event.finish_reason, event.stop_sequence
        finally:
            await self.aclose()
        for result, pieces in zip(results, text, strict=True):
            result.text = "".join(pieces)
        return results


async def _indexed(events: AsyncGenerator[UpstreamEvent, None]) -> AsyncGenerator[UpstreamEvent, None]:
    async with contextlib.aclosing(events) as items:
        async for item in items:
            yield item
