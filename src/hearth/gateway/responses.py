"""Stored, chained and background responses (OpenAI's Responses API) over ``Gateway.chat``.

A client of the gateway, as the API families are: ``app.py`` builds it beside the gateway, and
the responses live in the database's ``ResponseStore``.

A new response's prompt is its ``instructions``, then the stored conversation its
``previous_response_id`` ends (every earlier turn's input items and output, oldest first), then
its own input. Rendered the same way every turn, it shares its prefix with the turn before, so
the engine's slot prefix cache reuses that turn's KV instead of prefilling it again.

Ownership: a response belongs to the key that made it (``None`` on a server without keys,
where responses are shared); another key sees a 404, as for an unknown id.

Background responses survive the request: the service stores them ``queued``, hands the call
over to the work (``Gateway.hand_off``: one usage row, written when the work ends) and runs it.
A key's ``max_concurrent`` bounds how many it may have queued or running.
Replicas share the database, so the runner refreshes the row's heartbeat every
``responses_heartbeat_s`` and reads its status back at the same time: a cancel written by any
replica is seen within one beat. A replica that finds a heartbeat ``STALE_BEATS`` beats old (its
server died) marks the response failed; a graceful shutdown fails its own at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from hearth.errors import InvalidRequest, NotFound, NotReady, RateLimited, Subject
from hearth.gateway.call import Call
from hearth.gateway.response_output import STOPPED_MESSAGE, new_id
from hearth.gateway.response_runs import BackgroundRun, ResponseRun, run_background
from hearth.gateway.service import Gateway
from hearth.inference.responses import (
    ACTIVE,
    InputItem,
    ItemPage,
    NewResponse,
    ResponseRecord,
    ResponseStatus,
    Turn,
)
from hearth.inference.types import ChatRequest, Message, ToolCall
from hearth.store.database import Database
from hearth.store.responses import ChainBroken

log = logging.getLogger("hearth.responses")

STALE_BEATS = 10  # a background response unbeaten this many heartbeats has lost its server
SWEEP_EVERY = 5  # heartbeats between sweeps for stale responses
PURGE_EVERY_S = 3600.0
CANCEL_WAIT_S = 5.0  # a cancel on the runner's own replica waits this long for the outcome


class ResponseNotFound(NotFound):
    reason = "response_not_found"


class Responses:
    def __init__(
        self, gateway: Gateway, database: Database, heartbeat_s: float, retention_days: float
    ) -> None:
        self.gateway = gateway
        self._database = database
        self.heartbeat_s = heartbeat_s
        self.retention_days = retention_days
        self.store = database.responses
        self.worker = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._runs: dict[str, BackgroundRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._maintenance: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Once the database is up: fail what a stopped server left running, purge, keep watch."""
        try:
            await self._sweep()
        except Exception as exc:
            log.warning("could not sweep stale background responses: %s", type(exc).__name__)
        await self._purge_expired()
        self._maintenance = asyncio.create_task(self._maintain(), name="responses-maintenance")

    async def close(self) -> None:
        """Shutting down: the background work still running here ends failed, with a reason."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        for run in list(self._runs.values()):
            run.stop("shutdown")
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    def _ready(self) -> None:
        if not self._database.ready:
            raise NotReady("the response store is not ready yet; try again shortly", retry_after=2)

    # -- creating ------------------------------------------------------------------------------

    async def create(self, call: Call, new: NewResponse) -> ResponseRun:
        """A foreground response, generating (its first event already awaited)."""
        request = await self._chat_request(call, new)
        stream = await self.gateway.chat(call, request)
        return ResponseRun(self._record(call, new, "in_progress"), new.input, stream, self._save, self._spawn)

    async def create_background(self, call: Call, new: NewResponse) -> ResponseRecord:
        """Store a ``queued`` response and run it here, after this request has been answered.

        Everything a foreground request would refuse (the model, scope, context, tools) is
        refused now, with its status; only generation itself happens later.
        """
        if not new.store:
            raise InvalidRequest(
                "background responses must be stored: set {store} to true", subject=Subject.STORE
            )
        self._ready()
        await self._check_background_limit(call)
        request = await self._chat_request(call, new)
        job = await self.gateway.plan_chat(call, request)
        record = self._record(call, new, "queued")
        await asyncio.to_thread(self.store.insert, record, new.input, self.worker)
        work = self.gateway.hand_off(call, f"{call.identity.route} (background)"[:128])
        run = BackgroundRun(self._record_copy(record), work, job)
        self._runs[record.id] = run
        run.task = self._spawn(self._background(run))
        return record

    async def _check_background_limit(self, call: Call) -> None:
        """A key's ``max_concurrent`` bounds its queued and running background responses too
        (counted in the shared database, so across replicas); the work holds no request slot,
        so the key can poll and cancel it meanwhile."""
        key = call.identity.key
        if key is None or not key.max_concurrent:
            return
        running = await asyncio.to_thread(self.store.count_active_background, key.id)
        if running >= key.max_concurrent:
            raise RateLimited(
                f"this key already has {running} background responses queued or running, and allows "
                f"{key.max_concurrent} at once",
                retry_after=1,
            )

    async def _background(self, run: BackgroundRun) -> None:
        try:
            await run_background(run, self.store, self.gateway.start_job, self.gateway.close_call)
        finally:
            self._runs.pop(run.record.id, None)

    # -- reading and managing ------------------------------------------------------------------

    async def retrieve(self, call: Call, response_id: str) -> ResponseRecord:
        self._ready()
        record = await asyncio.to_thread(self.store.get, response_id, call.key_id)
        if record is None:
            raise ResponseNotFound(f"no response with id {response_id!r}", subject=Subject.RESPONSE)
        return record

    async def input_items(
        self,
        call: Call,
        response_id: str,
        *,
        after: str | None,
        limit: int,
        order: Literal["asc", "desc"],
    ) -> ItemPage:
        self._ready()
        page = await asyncio.to_thread(
            lambda: self.store.input_items(response_id, call.key_id, after=after, limit=limit, order=order)
        )
        if page is None:
            raise ResponseNotFound(f"no response with id {response_id!r}", subject=Subject.RESPONSE)
        return page

    async def delete(self, call: Call, response_id: str) -> None:
        self._ready()
        if not await asyncio.to_thread(self.store.delete, response_id, call.key_id):
            raise ResponseNotFound(f"no response with id {response_id!r}", subject=Subject.RESPONSE)
        if (run := self._runs.get(response_id)) is not None:
            run.stop("cancelled")

    async def cancel(self, call: Call, response_id: str) -> ResponseRecord:
        """Cancel a queued or running background response, on whichever replica runs it."""
        record = await self.retrieve(call, response_id)
        if not record.background:
            raise InvalidRequest("only background responses can be cancelled", subject=Subject.RESPONSE)
        if record.status not in ACTIVE:
            return record  # already over: cancelling is idempotent
        await asyncio.to_thread(self.store.cancel, response_id, call.key_id)
        if (run := self._runs.get(response_id)) is not None:
            run.stop("cancelled")
            await run.wait(CANCEL_WAIT_S)  # so the answer carries the partial output and usage
        return await self.retrieve(call, response_id)

    async def purge(self, older_than_days: float) -> int:
        """Delete finished responses created more than ``older_than_days`` ago (admin)."""
        before = datetime.now(UTC) - timedelta(days=older_than_days)
        deleted = await asyncio.to_thread(self.store.purge, before)
        log.info("purged %d stored responses older than %s days", deleted, older_than_days)
        return deleted

    # -- the conversation ----------------------------------------------------------------------

    async def _chat_request(self, call: Call, new: NewResponse) -> ChatRequest:
        self._ready()
        previous = new.previous_response_id
        if previous is None:
            return new.chat_request(())
        try:
            turns = await asyncio.to_thread(self.store.chain, previous, call.key_id)
        except ChainBroken as exc:
            raise ResponseNotFound(
                f"response {exc.missing!r}, an earlier turn of the conversation that "
                f"{previous!r} continues, was deleted",
                subject=Subject.PREVIOUS_RESPONSE,
            ) from exc
        if turns is None:
            raise ResponseNotFound(f"no response with id {previous!r}", subject=Subject.PREVIOUS_RESPONSE)
        if turns[-1].status in ACTIVE:
            raise InvalidRequest(
                f"response {previous!r} is still {turns[-1].status}: wait until it has finished",
                subject=Subject.PREVIOUS_RESPONSE,
            )
        return new.chat_request(conversation(turns))

    # -- records -------------------------------------------------------------------------------

    @staticmethod
    def _record(call: Call, new: NewResponse, status: ResponseStatus) -> ResponseRecord:
        return ResponseRecord(
            id=new_id("resp"),
            key_id=call.key_id,
            model=new.model,
            status=status,
            created_at=datetime.now(UTC),
            background=new.background,
            store=new.store,
            previous_response_id=new.previous_response_id,
            instructions=new.instructions,
            params=new.params,
        )

    @staticmethod
    def _record_copy(record: ResponseRecord) -> ResponseRecord:
        return ResponseRecord(**{**record.__dict__, "output": []})

    async def _save(self, record: ResponseRecord, items: Sequence[InputItem]) -> None:
        if record.store:
            await asyncio.to_thread(self.store.insert, record, items)

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- keeping watch -------------------------------------------------------------------------

    async def _maintain(self) -> None:
        beats = 0
        last_purge = time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat_s)
            beats += 1
            try:
                await self._beat()
                if beats % SWEEP_EVERY == 0:
                    await self._sweep()
                if time.monotonic() - last_purge > PURGE_EVERY_S:
                    last_purge = time.monotonic()
                    await self._purge_expired()
            except Exception as exc:  # the database is away: try again next beat
                log.warning("responses upkeep failed: %s", type(exc).__name__)

    async def _beat(self) -> None:
        """Refresh this replica's running responses; stop those cancelled or deleted elsewhere."""
        if not self._runs:
            return
        active = await asyncio.to_thread(self.store.heartbeat, list(self._runs))
        for response_id, run in list(self._runs.items()):
            if response_id not in active:
                run.stop("cancelled")

    async def _sweep(self) -> None:
        before = datetime.now(UTC) - timedelta(seconds=self.heartbeat_s * STALE_BEATS)
        if failed := await asyncio.to_thread(self.store.fail_stale, before, STOPPED_MESSAGE):
            log.warning("marked %d background responses failed: their server stopped", failed)

    async def _purge_expired(self) -> None:
        if self.retention_days > 0:
            with contextlib.suppress(Exception):
                await self.purge(self.retention_days)


def conversation(turns: Sequence[Turn]) -> list[Message]:
    """Stored turns as messages: each turn's input, then its output as the assistant's reply.

    Function calls join the assistant message before them, so parallel calls are one turn.
    """
    messages: list[Message] = []
    for turn in turns:
        messages.extend(turn.inputs)
        for item in turn.output:
            if item.type == "message":
                messages.append(Message.of("assistant", item.text))
            else:
                call = ToolCall(item.call_id, item.name, item.arguments)
                messages.append(Message("assistant", tool_calls=(call,)))
    return merge_tool_calls(messages)


def merge_tool_calls(messages: Sequence[Message]) -> list[Message]:
    merged: list[Message] = []
    for message in messages:
        last = merged[-1] if merged else None
        if (
            last is not None
            and message.role == last.role == "assistant"
            and message.tool_calls
            and not message.parts
        ):
            merged[-1] = Message(
                "assistant", last.parts, (*last.tool_calls, *message.tool_calls), name=last.name
            )
        else:
            merged.append(message)
    return merged
