"""Dynamic batching for embeddings and vision: merge requests that arrive close together.

Requests queue on the event loop; one collector task takes the first waiting item, waits until
``window_s`` after its arrival for more (up to ``max_batch``), and runs the batch in a single
worker thread, so the loop never blocks and there is only ever one forward pass at a time. Items
that pile up while a batch runs form the next batch at once, so batching grows with load.
A caller sending one request after another, with nobody else about, skips the window.

Waiting items queue by tenant (engines/fair_queue.py): under overload each batch is filled
fairly across the keys waiting and by priority, so a key that sent hundreds of texts does not
push another key's one text behind all of them. The ticket comes from the request's context
(``fair_queue.admitted_as``); without one, items are served in arrival order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from hearth.config import ModelSpec
from hearth.engines.base import EngineActivity
from hearth.engines.compute import ComputeTurns
from hearth.engines.fair_queue import ADMISSION, FairQueue, Ticket
from hearth.errors import Overloaded

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]
    queued_at: float


class MicroBatcher(Generic[In, Out]):
    def __init__(
        self,
        run_batch: Callable[[list[In]], Sequence[Out]],
        *,
        name: str,
        max_batch: int,
        window_s: float,
        max_queue: int,
        compute: ComputeTurns,
        alone_after_s: float = 1.0,
    ) -> None:
        self._run_batch = run_batch
        self._compute = compute
        self._max_batch = max_batch
        self._window_s = window_s
        self._max_queue = max_queue
        self._alone_after_s = alone_after_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._queue: FairQueue[_Pending[In, Out]] = FairQueue()
        self._arrived: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches_run = 0
        self.items_run = 0
        self._running = 0
        # When a forward pass last ran, and last carried more than one item (monotonic seconds).
        self._last_batch = self._last_shared = -float("inf")

    @classmethod
    def for_model(
        cls,
        run_batch: Callable[[list[In]], Sequence[Out]],
        spec: ModelSpec,
        compute: ComputeTurns,
        *,
        max_queue: int,
    ) -> MicroBatcher[In, Out]:
        """A batcher sized by a model's config: ``batch_size``, ``batch_window_ms``."""
        return cls(
            run_batch,
            name=spec.id,
            max_batch=spec.batch_size,
            window_s=spec.batch_window_ms / 1000,
            max_queue=max_queue,
            compute=compute,
        )

    async def submit(self, item: In) -> Out:
        arrived = self._ensure_started()
        queue = self._queue
        if len(queue) >= self._max_queue:
            raise Overloaded("the server is busy: the request queue is full", retry_after=1)
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        pending = _Pending(item, future, time.monotonic())
        queue.push(pending, ADMISSION.get() or Ticket())
        arrived.set()
        try:
            return await future
        finally:
            queue.remove(pending)  # a caller that gave up leaves the queue (no-op once taken)

    def _ensure_started(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._arrived is None or self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._queue = FairQueue()
            self._arrived = asyncio.Event()
            self._task = loop.create_task(self._collect(self._queue, self._arrived), name="micro-batcher")
        return self._arrived

    async def _next(self, queue: FairQueue[_Pending[In, Out]], arrived: asyncio.Event) -> _Pending[In, Out]:
        while not queue:
            arrived.clear()
            await arrived.wait()
        return queue.pop()

    async def _collect(self, queue: FairQueue[_Pending[In, Out]], arrived: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._next(queue, arrived)]
            # The window runs from the first item's arrival: items that queued while a batch ran
            # have waited long enough, so the next batch starts at once and computes while the
            # loop answers the previous batch's callers.
            deadline = batch[0].queued_at + (0.0 if self._alone(queue) else self._window_s)
            while len(batch) < self._max_batch:
                if queue:
                    batch.append(queue.pop())
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                arrived.clear()
                try:  # wait for an arrival only: the item is taken above, never inside a timeout
                    await asyncio.wait_for(arrived.wait(), remaining)
                except TimeoutError:
                    break
            live = [p for p in batch if not p.future.done()]  # callers that gave up are skipped
            if not live:
                continue
            self._running = len(live)
            self._last_batch = time.monotonic()
            if len(live) > 1:
                self._last_shared = self._last_batch
            try:
                results = await loop.run_in_executor(self._executor, self._run_on_cpu, [p.item for p in live])
            except Exception as exc:  # one bad batch fails its callers, never the collector
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            finally:
                self._running = 0
            self.batches_run += 1
            self.items_run += len(live)
            for p, result in zip(live, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)

    def _run_on_cpu(self, items: list[In]) -> Sequence[Out]:
        with self._compute.turn():  # taking turns with the other engines' passes (compute.py)
            return self._run_batch(items)

    def _alone(self, queue: FairQueue[_Pending[In, Out]]) -> bool:
        """A caller sending one request after another: nothing for the window to wait for.

        True while batches keep running (within ``alone_after_s``) but none has carried two
        items for that long. After an idle spell the window applies again, so a burst that
        starts from cold is gathered into one batch instead of leaving its first item alone.
        """
        now = time.monotonic()
        alone_after = self._alone_after_s
        return not queue and now - self._last_batch < alone_after < now - self._last_shared

    def activity(self) -> EngineActivity:
        waiting = len(self._queue)
        return EngineActivity(self._running, waiting, self.batches_run, self.items_run)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
