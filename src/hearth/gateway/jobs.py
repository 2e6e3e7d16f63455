"""Generation work, planned and ready to start: what a ``GenerationStream`` runs.

A ``LocalJob`` holds token ids for a local engine, one prompt per choice (several choices
generate concurrently, their events interleaved). A ``RemoteJob`` holds the neutral request
for an upstream engine, which renders, counts and samples itself; its prompt size is an
estimate until the upstream reports its own usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Protocol

from hearth.engines.base import ChatEngine, SamplingParams
from hearth.engines.fair_queue import Ticket
from hearth.inference.events import ChoiceEvent, UpstreamEvent, estimated_tokens

Indexed = tuple[int, ChoiceEvent]


class Job(Protocol):
    @property
    def choices(self) -> int: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def worst_case_tokens(self) -> int: ...
    @property
    def caller_stops(self) -> tuple[str, ...]: ...
    @property
    def tool_calls(self) -> bool: ...
    @property
    def answered(self) -> frozenset[tuple[str, str]]: ...
    def events(self) -> AsyncGenerator[UpstreamEvent, None]: ...
    def answer_events(self, spent: int) -> AsyncGenerator[UpstreamEvent, None] | None: ...


@dataclass
class LocalJob:
    engine: ChatEngine
    prompts: list[list[int]]  # one per choice
    params: SamplingParams
    caller_stops: tuple[str, ...]  # the stops the caller asked for (not the template's)
    tool_calls: bool = False  # the output may hold tool-call markup, parsed as it streams
    answered: frozenset[tuple[str, str]] = frozenset()  # calls the conversation has results for
    answer_params: SamplingParams | None = None  # a text answer's params, when it may answer again

    @property
    def choices(self) -> int:
        return len(self.prompts)

    def admit_as(self, ticket: Ticket) -> None:
        """Whose work this is and how urgent, for the engine's fair admission."""
        self.params = dataclasses.replace(self.params, ticket=ticket)
        if self.answer_params is not None:
            self.answer_params = dataclasses.replace(self.answer_params, ticket=ticket)

    @property
    def worst_case_tokens(self) -> int:
        """What tokens-per-minute limits reserve up front: every prompt plus every max_tokens."""
        return sum(len(p) for p in self.prompts) + self.params.max_tokens * len(self.prompts)

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p) for p in self.prompts)

    async def events(self) -> AsyncGenerator[UpstreamEvent, None]:
        if len(self.prompts) == 1:
            async with contextlib.aclosing(self.engine.generate(self.prompts[0], self.params)) as events:
                async for event in events:
                    yield 0, event
            return
        async with contextlib.aclosing(_merge(self)) as merged:
            async for item in merged:
                yield item

    def answer_events(self, spent: int) -> AsyncGenerator[UpstreamEvent, None] | None:
        """The one choice generated again as text, within what is left of its max_tokens after
        ``spent``; None where it cannot be (no text grammar, several choices, no tokens left)."""
        if self.answer_params is None or len(self.prompts) != 1:
            return None
        left = self.answer_params.max_tokens - spent
        if left < 1:
            return None
        job = LocalJob(
            self.engine, self.prompts, dataclasses.replace(self.answer_params, max_tokens=left), ()
        )
        return job.events()


@dataclass
class RemoteJob:
    """A request for an upstream engine; ``start`` opens its stream (chat or raw completion)."""

    start: Callable[[], AsyncGenerator[UpstreamEvent, None]]
    prompt_chars: int
    max_tokens: int | None  # None: the upstream decides
    choices: int
    caller_stops: tuple[str, ...]
    context_length: int | None = None
    tool_calls: bool = False  # upstreams send tool calls structured: nothing to parse
    answered: frozenset[tuple[str, str]] = frozenset()

    @property
    def prompt_tokens(self) -> int:
        """An estimate, replaced by the upstream's own count when it reports one."""
        return estimated_tokens(self.prompt_chars)

    @property
    def worst_case_tokens(self) -> int:
        room = self.max_tokens or max(0, (self.context_length or 0) - self.prompt_tokens) or 1024
        return self.prompt_tokens * self.choices + room * self.choices

    def events(self) -> AsyncGenerator[UpstreamEvent, None]:
        return self.start()

    def answer_events(self, spent: int) -> AsyncGenerator[UpstreamEvent, None] | None:
        return None  # the upstream decides what its model says


async def _merge(job: LocalJob) -> AsyncGenerator[Indexed, None]:
    """Several choices generated concurrently, their events interleaved as they come."""
    queue: asyncio.Queue[Indexed | BaseException | None] = asyncio.Queue()

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
