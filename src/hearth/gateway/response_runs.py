"""Running responses: a foreground run the HTTP request streams, and background work.

A foreground run is iterated by the family's renderer for item events and stores its response
once, when it ends (so ``previous_response_id`` can name it as soon as its last event is sent).
A background run owns a call of its own (``Gateway.hand_off``): it generates with nobody
reading, and its outcome, cancelled, failed or done, goes into the stored row it was created
with. ``stop`` cancels it (a cancel, a delete, or the server shutting down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from hearth.errors import HearthError, as_hearth_error
from hearth.gateway.call import Call
from hearth.gateway.jobs import Job
from hearth.gateway.response_output import STOPPED_MESSAGE, OutputBuilder, conclude, fail
from hearth.gateway.streams import GenerationStream
from hearth.inference.events import GenerationDone
from hearth.inference.responses import InputItem, ResponseEvent, ResponseRecord
from hearth.store.responses import ResponseStore

log = logging.getLogger("hearth.responses")

CLIENT_CLOSED = 499  # the usage row's status for a cancelled response (nginx's "client closed")
StopReason = Literal["cancelled", "shutdown"]


async def _drive(
    record: ResponseRecord, stream: GenerationStream, builder: OutputBuilder
) -> AsyncIterator[ResponseEvent]:
    """The item events of a generation; ``record`` is concluded when the last one is out."""
    async for _, event in stream:
        for item_event in builder.feed(event):
            yield item_event
        if isinstance(event, GenerationDone):
            conclude(record, event)
    record.usage = stream.usage


class ResponseRun:
    """A foreground response generating: iterate ``events()``, or ``collect()`` it whole."""

    def __init__(
        self,
        record: ResponseRecord,
        items: Sequence[InputItem],
        stream: GenerationStream,
        save: Callable[[ResponseRecord, Sequence[InputItem]], Awaitable[None]],
        spawn: Callable[[Awaitable[None]], object],
    ) -> None:
        self.record = record
        self._items = items
        self._stream = stream
        self._save = save
        self._spawn = spawn
        self._builder = OutputBuilder(record)
        self._ended = False
        self._events = self._generate()

    def events(self) -> AsyncIterator[ResponseEvent]:
        """Item events as they come. A failure is stored, then raised as a ``HearthError``."""
        return self._events

    async def aclose(self) -> None:
        """Stop generating (the client is gone); what was generated is stored as cancelled."""
        await self._events.aclose()

    async def _generate(self) -> AsyncGenerator[ResponseEvent, None]:
        try:
            async for event in _drive(self.record, self._stream, self._builder):
                yield event
        except HearthError as exc:
            self._ended = True
            fail(self.record, exc)
            self.record.usage = self._stream.usage
            await self._save(self.record, self._items)
            raise
        else:
            self._ended = True
            try:
                await self._save(self.record, self._items)
            except Exception as exc:  # generated, but not stored: a failure the client must see
                fail(self.record, as_hearth_error(exc))
                raise
        finally:
            await self._stream.aclose()
            if not self._ended:  # the client left mid-stream: keep what was generated
                self._ended = True
                self._builder.close("incomplete")
                self.record.status, self.record.completed_at = "cancelled", datetime.now(UTC)
                self.record.usage = self._stream.usage
                self._spawn(self._save(self.record, self._items))

    async def collect(self) -> ResponseRecord:
        try:
            async for _ in self._events:
                pass
        finally:
            await self.aclose()
        return self.record


class BackgroundRun:
    def __init__(self, record: ResponseRecord, call: Call, job: Job) -> None:
        self.record = record
        self.call = call
        self.job = job
        self.task: asyncio.Task[None] | None = None
        self.stop_reason: StopReason = "cancelled"
        self.finishing = False  # past generation: writing its outcome, no longer stoppable

    def stop(self, reason: StopReason) -> None:
        if self.task is not None and not self.finishing and not self.task.done():
            self.stop_reason = reason
            self.task.cancel()

    async def wait(self, within_s: float) -> None:
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=within_s)


async def run_background(
    run: BackgroundRun,
    store: ResponseStore,
    start: Callable[[Call, Job, str], Awaitable[GenerationStream]],
    close_call: Callable[[Call, int, str | None], Awaitable[None]],
) -> None:
    """Generate a stored background response to its end, and write the outcome to its row."""
    record, call = run.record, run.call
    builder = OutputBuilder(record)
    status, kind = 200, None
    try:
        stream = await start(call, run.job, record.model)
        try:
            if not await asyncio.to_thread(store.mark_started, record.id):
                raise asyncio.CancelledError  # cancelled (or deleted) while it was queued
            record.status = "in_progress"
            async for _ in _drive(record, stream, builder):
                pass
        finally:
            record.usage = stream.usage
            await stream.aclose()
    except asyncio.CancelledError:
        run.finishing = True
        builder.close("incomplete")
        if run.stop_reason == "shutdown":
            fail(record, HearthError(STOPPED_MESSAGE, reason="server_stopped"))
            status, kind = 503, "server_stopped"
        else:
            record.status, record.completed_at = "cancelled", datetime.now(UTC)
            status, kind = CLIENT_CLOSED, "cancelled"
    except Exception as exc:
        run.finishing = True
        error = as_hearth_error(exc)
        fail(record, error)
        status, kind = error.status_code, error.label
    run.finishing = True
    record.usage = record.usage or call.usage
    try:
        await asyncio.to_thread(store.finish, record)
    except Exception:
        # The row keeps its heartbeat-less active status; the stale sweep fails it later.
        log.exception("could not store the outcome of background response %s", record.id)
    with contextlib.suppress(Exception):
        await close_call(call, status, kind)
