"""Batch jobs (OpenAI's Batch API): accepted here, run by ``BatchRunner`` on whichever replica
claims them, at the lowest priority.

A batch reads its lines from a file its key uploaded (``/v1/files``). The runner checks every
line first (``validating``): a malformed line fails the batch with one error per line, as
OpenAI does. It then runs the lines (``in_progress``), each as its key's own request, and
records each finished line in the database. It writes the output and error files
(``finalizing``), and ends ``completed``, ``cancelled`` or ``expired``.

Each line is a call of the batch's key, made as background work is (``Gateway.batch_call``):
- the key's scope and monthly budget apply, and its token limits count the line's tokens;
- its request-rate limit does not, since the batch was accepted already;
- it runs in the batch class (gateway/priority.py): on capacity interactive work leaves idle;
- its usage row carries the batch's id and the line's ``custom_id``.

A replica that dies hands its batch on through the heartbeat. Lines already recorded are not
run again; one in flight at the crash runs again on the next replica.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hearth.errors import InvalidRequest, NotFound, RateLimited
from hearth.gateway.batch_file import Line, estimated_input_tokens, parse_lines
from hearth.gateway.call import Call
from hearth.gateway.service import Gateway
from hearth.inference.events import EmbedResult
from hearth.inference.types import EmbedRequest
from hearth.store.batches import FINAL, BatchStore, BatchView, FinishedLine
from hearth.store.files import FileStore
from hearth.store.keys import KeyStore

log = logging.getLogger("hearth.batches")

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
MESSAGES = "/v1/messages"  # Anthropic's Message Batches: their requests become a file of lines
WINDOW = timedelta(hours=24)
# Lines of one batch in flight at once: enough to fill a chat model's decoding slots (8 by
# default), and an embedding model's batches (64 texts), so a batch runs as fast as a busy
# server does; the fair queue still serves interactive requests first.
IN_FLIGHT = {"/v1/embeddings": 192}

# Lines run together, so that lines of small requests can share one engine call (embeddings).
GROUP = {"/v1/embeddings": 32}

# Runs a group of lines' bodies on their endpoint, each as its own call: (HTTP status, response
# body) for each. It lives in the API layer (the family's mappers and renderers); app.py hands
# it in.
Execute = Callable[[list[Call], str, list[dict[str, Any]]], Awaitable[list[tuple[int, dict[str, Any]]]]]


async def embed_lines(gateway: Gateway, calls: list[Call], requests: list[EmbedRequest]) -> list[EmbedResult]:
    """Batch lines that embed with one model, in one gateway call: the first line's call
    resolves the model and is admitted for all (the lines share a key); then each line's call
    is metered with its own texts' tokens, so its usage row is what it would be alone."""
    lead = calls[0]
    texts = tuple(text for request in requests for text in request.texts)
    whole = await gateway.embed(lead, dataclasses.replace(requests[0], texts=texts))
    parts: list[EmbedResult] = []
    start = 0
    for call, request in zip(calls, requests, strict=True):
        end = start + len(request.texts)
        if call is not lead:  # the model is held once, by the lead, and released when it closes
            call.resolution = dataclasses.replace(lead.resolution, entry=None, shadow=None)
        counts = whole.token_counts[start:end]
        call.metering.prompt_tokens = sum(counts)
        parts.append(EmbedResult(whole.model, whole.vectors[start:end], counts))
        start = end
    return parts


def _owner(call: Call) -> int | None:
    key = call.identity.key
    return None if key is None else key.id


def _queued_limit(call: Call) -> int | None:
    key = call.identity.key
    return None if key is None else key.batch_queued_tokens


class Batches:
    """What ``/v1/batches`` asks for."""

    def __init__(self, batches: BatchStore, files: FileStore) -> None:
        self._batches = batches
        self._files = files

    async def create(
        self, call: Call, input_file_id: str, endpoint: str, window: str, metadata: dict[str, Any] | None
    ) -> BatchView:
        if endpoint not in ENDPOINTS:
            raise InvalidRequest(f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint")
        if window != "24h":
            raise InvalidRequest("completion_window must be 24h", param="completion_window")
        found = await asyncio.to_thread(self._files.get, _owner(call), input_file_id)
        if found is None:
            raise NotFound(f"No such File object: {input_file_id}", param="input_file_id")
        if found.purpose != "batch":
            raise InvalidRequest("the input file's purpose must be batch", param="input_file_id")
        limit = _queued_limit(call)
        tokens = 0
        if limit is not None:
            content = await asyncio.to_thread(self._files.content, _owner(call), input_file_id) or b""
            lines, _ = parse_lines(content, endpoint)  # malformed lines fail it in validation
            tokens = estimated_input_tokens([line.body for line in lines])
        return await asyncio.to_thread(
            lambda: self._batches.create(
                _owner(call),
                endpoint,
                input_file_id,
                WINDOW,
                metadata,
                queued_tokens=tokens,
                queued_limit=limit,
            )
        )

    async def create_messages(self, call: Call, requests: list[tuple[str, dict[str, Any]]]) -> BatchView:
        """Anthropic's Message Batches: the requests kept as a batch file, run as OpenAI's are."""
        lines = [
            {"custom_id": cid, "method": "POST", "url": MESSAGES, "body": params} for cid, params in requests
        ]
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        made = await asyncio.to_thread(
            self._files.create, _owner(call), "batch", "message_batch.jsonl", content
        )
        tokens = estimated_input_tokens([params for _, params in requests])
        try:
            return await asyncio.to_thread(
                lambda: self._batches.create(
                    _owner(call), MESSAGES, made.id, WINDOW, None, total=len(requests),
                    queued_tokens=tokens, queued_limit=_queued_limit(call), refuse_over_limit=True,
                )
            )  # fmt: skip
        except RateLimited:
            await asyncio.to_thread(self._files.delete, _owner(call), made.id)
            raise

    async def results(self, call: Call, batch_id: str) -> list[dict[str, Any]]:
        """Every line's result, in the input's order: run (ok or not), or never run (cancelled,
        expired), as the output and error files hold them."""
        batch = await self.get(call, batch_id)
        recorded = {n: result for n, _, result in await asyncio.to_thread(self._batches.lines, batch.id)}
        content = await asyncio.to_thread(self._files.content, batch.key_id, batch.input_file_id) or b""
        lines, _ = parse_lines(content, batch.endpoint)
        gone = {"cancelled": "batch_cancelled", "expired": "batch_expired"}.get(batch.status, "batch_failed")
        return [
            recorded.get(line.number)
            or {
                "custom_id": line.custom_id,
                "response": None,
                "error": {"code": gone, "message": batch.status},
            }
            for line in lines
        ]

    async def delete(self, call: Call, batch_id: str) -> None:
        batch = await self.get(call, batch_id)
        if batch.status not in FINAL:
            raise InvalidRequest(f"batch {batch_id} has not ended: cancel it first", param="batch_id")
        await asyncio.to_thread(self._batches.delete, batch.id)

    async def get(self, call: Call, batch_id: str) -> BatchView:
        found = await asyncio.to_thread(self._batches.get, _owner(call), batch_id)
        if found is None:
            raise NotFound(f"No such Batch object: {batch_id}", param="batch_id")
        return found

    async def page(self, call: Call, limit: int, after: str | None) -> tuple[list[BatchView], bool]:
        return await asyncio.to_thread(self._batches.page, _owner(call), limit, after)

    async def cancel(self, call: Call, batch_id: str) -> BatchView:
        await self.get(call, batch_id)
        found = await asyncio.to_thread(self._batches.request_cancel, _owner(call), batch_id)
        assert found is not None
        return found


class _Recorder:
    """Finished lines, committed to the database in groups: one transaction per group keeps a
    line and its usage row together, and a commit per line would cap a batch of small
    embeddings at the database's commit rate."""

    GROUP = 32

    def __init__(self, batches: BatchStore, batch_id: str, worker: str) -> None:
        self._batches, self._batch_id, self._worker = batches, batch_id, worker
        self.lost = False  # another replica took the batch over: what this one ran is not kept
        self._pending: list[FinishedLine] = []
        self._lock = asyncio.Lock()
        self._last = time.monotonic()

    async def add(self, finished: FinishedLine) -> None:
        self._pending.append(finished)
        if len(self._pending) >= self.GROUP or time.monotonic() - self._last > 0.5:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            group, self._pending = self._pending, []
            self._last = time.monotonic()
            held = await asyncio.to_thread(self._batches.record_lines, self._batch_id, self._worker, group)
            self.lost = self.lost or not held


class _StatusWatch:
    """The batch's status as the runner last read it, read again at most every ``EVERY`` s: a
    cancel reaches the lines within that, and a batch of small lines does not spend a database
    round trip on each."""

    EVERY = 0.5

    def __init__(self, batches: BatchStore, batch_id: str, worker: str) -> None:
        self._batches, self._batch_id, self._worker = batches, batch_id, worker
        self._lock = asyncio.Lock()
        self._status: str | None = None
        self._read_at = -self.EVERY

    async def status(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._read_at >= self.EVERY:
                self._status = await asyncio.to_thread(self._batches.beat, self._batch_id, self._worker)
                self._read_at = time.monotonic()
            return self._status


class BatchRunner:
    """Claims batches from the database and runs them, one at a time per replica."""

    def __init__(
        self,
        gateway: Gateway,
        batches: BatchStore,
        files: FileStore,
        keys: KeyStore,
        execute: Execute,
        *,
        poll_s: float = 1.0,
        stale_s: float = 30.0,
    ) -> None:
        self._gateway, self._batches, self._files, self._keys = gateway, batches, files, keys
        self._execute = execute
        self.poll_s, self.stale_s = poll_s, stale_s
        self.worker = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batch-runner")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                stale = datetime.now(UTC) - timedelta(seconds=self.stale_s)
                batch = await asyncio.to_thread(self._batches.claim, self.worker, stale)
                if batch is None:
                    await asyncio.sleep(self.poll_s)
                    continue
                await self.run(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage: try again later, never stop the loop
                log.exception("batch runner")
                await asyncio.sleep(self.poll_s * 5)

    async def run(self, batch: BatchView) -> None:
        beat = asyncio.create_task(self._heartbeat(batch.id))
        try:
            await self._run(batch)
        finally:
            beat.cancel()

    async def _heartbeat(self, batch_id: str) -> None:
        while True:
            await asyncio.sleep(self.stale_s / 3)
            await asyncio.to_thread(self._batches.beat, batch_id, self.worker)

    async def _run(self, batch: BatchView) -> None:
        content = await asyncio.to_thread(self._files.content, batch.key_id, batch.input_file_id)
        if content is None:
            errors = [
                {
                    "code": "file_not_found",
                    "message": "the input file was deleted",
                    "param": None,
                    "line": None,
                }
            ]
            await self._move(batch.id, "failed", "failed_at", release=True, errors=errors)
            return
        lines, errors = parse_lines(content, batch.endpoint)
        if errors:
            await self._move(batch.id, "failed", "failed_at", release=True, errors=errors)
            return
        if batch.status == "validating":
            await self._move(batch.id, "in_progress", "in_progress_at", total=len(lines))
        elif batch.total != len(lines):  # cancelled before it started: the counts still add up
            await asyncio.to_thread(self._batches.beat, batch.id, self.worker, total=len(lines))
        key = None if batch.key_id is None else await asyncio.to_thread(self._keys.get_by_id, batch.key_id)
        done = {n for n, _, _ in await asyncio.to_thread(self._batches.lines, batch.id)}
        ending = await self._run_lines(batch, key, [line for line in lines if line.number not in done])
        if ending == "lost":  # this replica went quiet too long and another one took the batch over
            log.warning("batch %s was taken over by another replica; leaving it to that one", batch.id)
            return
        await self._finish(batch, lines, ending)

    async def _run_lines(self, batch: BatchView, key: Any, lines: list[Line]) -> str:
        """Run the lines, a few groups at a time; how the batch ends: completed, cancelled or
        expired (or lost, to a replica that took it over)."""
        size = GROUP.get(batch.endpoint, 1)
        gate = asyncio.Semaphore(max(1, IN_FLIGHT.get(batch.endpoint, 8) // size))
        recorder = _Recorder(self._batches, batch.id, self.worker)
        watch = _StatusWatch(self._batches, batch.id, self.worker)
        ending = "completed"

        async def run(group: list[Line]) -> None:
            nonlocal ending
            async with gate:
                if ending != "completed":
                    return
                status = await watch.status()
                if status is None or recorder.lost:
                    ending = "lost"
                    return
                if status == "cancelling":
                    ending = "cancelled"
                    return
                if datetime.now(UTC) >= batch.times["expires_at"].astimezone(UTC):  # type: ignore[union-attr]
                    ending = "expired"
                    return
                await self._run_group(batch, key, group, recorder)

        try:
            await asyncio.gather(*(run(lines[i : i + size]) for i in range(0, len(lines), size)))
        finally:
            await recorder.flush()
        return "lost" if recorder.lost else ending

    async def _run_group(self, batch: BatchView, key: Any, lines: list[Line], recorder: _Recorder) -> None:
        calls = [self._gateway.batch_call(key, batch.endpoint, batch.id, line.custom_id) for line in lines]
        answers: list[tuple[int, dict[str, Any]]] = []
        try:
            answers = await self._execute(calls, batch.endpoint, [line.body for line in lines])
        finally:
            answers += [(500, {})] * (len(lines) - len(answers))  # cancelled part-way: close them all
            for call, (status, body) in zip(calls, answers, strict=True):
                error = (body.get("error") or {}).get("code") if status >= 400 else None
                await self._gateway.close_call(call, status, error)  # limits back; the row goes below
        for line, call, (status, body) in zip(lines, calls, answers, strict=True):
            error = (body.get("error") or {}).get("code") if status >= 400 else None
            usage = call.usage_event(call.metering.failed_status or status, error).as_row()
            result = {
                "id": f"batch_req_{uuid.uuid4().hex}",
                "custom_id": line.custom_id,
                "response": {"status_code": status, "request_id": call.request_id, "body": body},
                "error": None,
            }
            await recorder.add(FinishedLine(line.number, line.custom_id, status < 400, result, usage))

    async def _finish(self, batch: BatchView, lines: list[Line], ending: str) -> None:
        if ending == "completed":
            await self._move(batch.id, "finalizing", "finalizing_at")
        recorded = await asyncio.to_thread(self._batches.lines, batch.id)
        done = {n for n, _, _ in recorded}
        outputs = [json.dumps(result) for _, ok, result in recorded if ok]
        failures = [json.dumps(result) for _, ok, result in recorded if not ok]
        code = {"cancelled": "batch_cancelled", "expired": "batch_expired"}.get(ending)
        for line in lines if code else ():
            if line.number not in done:
                error = {"code": code, "message": f"this request was not run: the batch was {ending}"}
                failures.append(json.dumps({"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line.custom_id,
                                            "response": None, "error": error}))  # fmt: skip
        files: dict[str, Any] = {}
        for field, name, rows in (
            ("output_file_id", "output", outputs),
            ("error_file_id", "error", failures),
        ):
            if rows:
                body = ("\n".join(rows) + "\n").encode()
                made = await asyncio.to_thread(
                    self._files.create, batch.key_id, "batch_output", f"{batch.id}_{name}.jsonl", body
                )
                files[field] = made.id
        when = {"completed": "completed_at", "cancelled": "cancelled_at", "expired": "expired_at"}[ending]
        await self._move(batch.id, ending, when, release=True, **files)

    async def _move(self, batch_id: str, status: str, when: str, **values: Any) -> None:
        worker = self.worker
        await asyncio.to_thread(self._batches.move, batch_id, worker, status, when=when, **values)
