"""MicroBatcher: merging, limits, failure isolation, and no window for items that already waited."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from hearth.engines.batching import MicroBatcher
from hearth.engines.compute import ComputeTurns
from hearth.engines.fair_queue import Ticket, admitted_as
from hearth.errors import Overloaded


class Recorder:
    """A batch function that records each batch and can be slowed down or made to fail."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.started: list[float] = []
        self.running = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.started.append(time.monotonic())
        self.running.set()
        self.batches.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError("negative input")
        time.sleep(self.delay_s)
        return [i * 10 for i in items]


def batcher(
    run: Recorder,
    *,
    max_batch: int = 64,
    window_s: float = 0.05,
    max_queue: int = 64,
    alone_after_s: float = 1.0,
) -> MicroBatcher[int, int]:
    return MicroBatcher(
        run,
        name="test",
        max_batch=max_batch,
        window_s=window_s,
        max_queue=max_queue,
        compute=ComputeTurns(),
        alone_after_s=alone_after_s,
    )


async def test_concurrent_items_merge_and_results_come_back_in_order() -> None:
    run = Recorder()
    b = batcher(run, window_s=0.2)
    try:
        results = await asyncio.gather(*(b.submit(i) for i in range(10)))
    finally:
        b.close()
    assert results == [i * 10 for i in range(10)]
    assert run.batches == [list(range(10))]
    assert (b.batches_run, b.items_run) == (1, 10)


async def test_max_batch_splits_a_burst() -> None:
    run = Recorder()
    b = batcher(run, max_batch=4, window_s=0.2)
    try:
        results = await asyncio.gather(*(b.submit(i) for i in range(10)))
    finally:
        b.close()
    assert results == [i * 10 for i in range(10)]
    assert [len(x) for x in run.batches] == [4, 4, 2]


async def test_a_failing_batch_fails_its_callers_only() -> None:
    run = Recorder()
    b = batcher(run, window_s=0.2)
    try:
        bad = await asyncio.gather(b.submit(1), b.submit(-1), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in bad)
        assert await b.submit(3) == 30  # the collector survived
    finally:
        b.close()


async def test_full_queue_is_overloaded() -> None:
    run = Recorder(delay_s=0.3)
    b = batcher(run, max_batch=1, window_s=0.0, max_queue=2)
    try:
        first = asyncio.create_task(b.submit(0))
        await asyncio.to_thread(run.running.wait, 5)  # item 0 is running; the queue is empty
        queued = [asyncio.create_task(b.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as info:
            await b.submit(3)
        assert info.value.retry_after == 1
        assert await asyncio.gather(first, *queued) == [0, 10, 20]
    finally:
        b.close()


async def test_items_that_waited_out_the_window_start_when_the_worker_frees() -> None:
    """The window counts from arrival, so a backlog runs at once instead of waiting again."""
    window, work = 0.5, 0.8
    run = Recorder(delay_s=work)
    b = batcher(run, window_s=window)
    try:
        started = time.monotonic()
        first = asyncio.create_task(b.submit(1))
        await asyncio.to_thread(run.running.wait, 5)
        second = asyncio.create_task(b.submit(2))  # queued while the first batch computes
        await asyncio.gather(first, second)
    finally:
        b.close()
    assert run.batches == [[1], [2]]
    gap = run.started[1] - (run.started[0] + work)
    # Waiting a fresh window after the first batch would make this gap about 0.5 s.
    assert gap < window / 2, f"the second batch waited {gap:.2f}s after the first finished"
    assert run.started[0] - started >= window * 0.9  # a lone item does wait for company


async def test_activity_reports_the_running_batch_and_the_queue() -> None:
    run = Recorder(delay_s=0.3)
    b = batcher(run, max_batch=2, window_s=0.0)
    try:
        tasks = [asyncio.ensure_future(b.submit(i)) for i in range(5)]
        await asyncio.to_thread(run.running.wait, 5)
        await asyncio.sleep(0.05)
        during = b.activity()
        await asyncio.gather(*tasks)
    finally:
        b.close()
    assert (during.running, during.waiting) == (2, 3)
    done = b.activity()
    assert (done.running, done.waiting, done.batches, done.batch_items) == (0, 0, 3, 5)


async def test_a_caller_alone_skips_the_window_until_someone_else_shows_up() -> None:
    window = 0.3
    run = Recorder()
    b = batcher(run, window_s=window, alone_after_s=0.5)

    async def timed(*items: int) -> float:
        begun = time.monotonic()
        await asyncio.gather(*(b.submit(i) for i in items))
        return time.monotonic() - begun

    try:
        cold = await timed(1)  # from cold, a first request may be the start of a burst
        sequential = [await timed(i) for i in range(2, 6)]  # one after another: no waiting
        await timed(6, 7)  # two at once share a batch...
        after_sharing = await timed(8)  # ...so for a while a lone request waits for company
        await asyncio.sleep(0.6)
        after_idle = await timed(9)  # and after an idle spell the window applies again
    finally:
        b.close()
    assert cold >= window * 0.9
    assert max(sequential) < window / 3, sequential
    assert run.batches[5] == [6, 7]
    assert after_sharing >= window * 0.9
    assert after_idle >= window * 0.9


async def test_a_flooding_key_does_not_push_another_keys_item_behind_its_own() -> None:
    run = Recorder(delay_s=0.05)
    b = batcher(run, max_batch=4, window_s=0.0, max_queue=1000)

    flood = [asyncio.create_task(send(b, n, Ticket("key:flood"))) for n in range(1, 41)]
    await asyncio.to_thread(run.running.wait, 5)  # the first batch is running; 36 items wait
    quiet = asyncio.create_task(send(b, 1000, Ticket("key:quiet")))
    assert await quiet == 10_000
    done_before = sum(t.done() for t in flood)
    assert done_before <= 8  # in the next batch, not after the flood's ten
    which = next(i for i, batch in enumerate(run.batches) if 1000 in batch)
    assert which <= 2, run.batches
    assert [r for r in await asyncio.gather(*flood)] == [n * 10 for n in range(1, 41)]
    b.close()


async def test_lower_priority_items_wait_for_the_more_urgent_ones() -> None:
    run = Recorder(delay_s=0.05)
    b = batcher(run, max_batch=2, window_s=0.0, max_queue=1000)

    first = asyncio.create_task(send(b, 1, Ticket("a")))
    await asyncio.to_thread(run.running.wait, 5)
    batch_work = [asyncio.create_task(send(b, n, Ticket("b", priority=20))) for n in range(2, 8)]
    await asyncio.sleep(0.01)
    urgent = asyncio.create_task(send(b, 99, Ticket("c", priority=0)))
    await asyncio.gather(first, urgent, *batch_work)
    assert run.batches[1][0] == 99, run.batches  # the urgent item leads the next batch
    b.close()


async def send(b: MicroBatcher[int, int], value: int, ticket: Ticket) -> int:
    """Submit ``value`` as a request admitted under ``ticket`` would."""
    with admitted_as(ticket):
        return await b.submit(value)
