"""Fair admission in the llama.cpp scheduler, on the default chat model: a key below its fair
share of slots takes one from a key above it, urgent work takes one from batch work, and the
sequence that gave up its slot resumes and runs to its end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from hearth.engines.base import GenerationDone, SamplingParams, TextDelta
from hearth.engines.fair_queue import Ticket
from hearth.engines.llama import LlamaEngine
from tests.helpers.llama import smollm2_engine

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaEngine]:
    with smollm2_engine(tmp_path_factory.mktemp("fairness"), slots=2, context_length=2048) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def split_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaEngine]:
    """Each slot with its own KV cells: a sequence's numbers do not depend on where other
    sequences' cells sit in a shared pool, so its greedy answer is the same token for token."""
    options = {"kv_unified": False}
    with smollm2_engine(
        tmp_path_factory.mktemp("split"), slots=2, context_length=2048, options=options
    ) as loaded:
        yield loaded


class Run:
    def __init__(self) -> None:
        self.first_token_at: float | None = None
        self.first = asyncio.Event()
        self.done: GenerationDone | None = None
        self.done_at = 0.0


NO_END = {0: -100.0, 1: -100.0, 2: -100.0}  # SmolLM2's end tokens: every run takes all its tokens


async def _run(engine: LlamaEngine, text: str, tokens: int, ticket: Ticket, run: Run) -> None:
    params = SamplingParams(max_tokens=tokens, temperature=0.0, ticket=ticket, logit_bias=NO_END)
    async for event in engine.generate(engine.tokenize(text), params):
        if isinstance(event, TextDelta) and run.first_token_at is None:
            run.first_token_at = time.monotonic()
            run.first.set()
        elif isinstance(event, GenerationDone):
            run.done, run.done_at = event, time.monotonic()


@pytest.mark.parametrize(
    ("flood", "newcomer"),
    [(Ticket("flood"), Ticket("quiet")), (Ticket("same", priority=10), Ticket("same", priority=0))],
    ids=["a key below its share", "urgent over standard"],
)
async def test_a_waiting_request_takes_a_slot_from_work_above_its_share(
    engine: LlamaEngine, flood: Ticket, newcomer: Ticket
) -> None:
    engine.clear_prefix_cache()
    before = engine.scheduler_stats()["preemptions"]
    runs = [Run() for _ in range(5)]
    tasks = [
        asyncio.create_task(_run(engine, f"Write a long story about ship number {i}.", 64, flood, run))
        for i, run in enumerate(runs)
    ]
    await asyncio.wait_for(asyncio.gather(runs[0].first.wait(), runs[1].first.wait()), timeout=120)
    # Both slots run the flood; three of its requests wait.
    quiet = Run()
    await asyncio.wait_for(_run(engine, "Say hello.", 4, newcomer, quiet), timeout=120)
    assert quiet.first_token_at is not None and quiet.done is not None
    assert all(r.first_token_at is None for r in runs[2:]), "admitted ahead of the flood's queue"
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    assert engine.scheduler_stats()["preemptions"] >= before + 1
    for run in runs:  # the preempted one resumed: every flood request ran to its end
        assert run.done is not None and run.done.completion_tokens == 64


async def _batch_text(
    engine: LlamaEngine, token_times: list[float], ticket: Ticket, started: asyncio.Event | None = None
) -> tuple[str, int]:
    params = SamplingParams(max_tokens=96, temperature=0.0, ticket=ticket, logit_bias=NO_END)
    text, tokens = "", 0
    async for event in engine.generate(engine.tokenize("Write a long story about a lighthouse."), params):
        if isinstance(event, TextDelta):
            token_times.append(time.monotonic())
            text += event.text
            if started is not None:
                started.set()
        elif isinstance(event, GenerationDone):
            tokens = event.completion_tokens
    return text, tokens


async def test_batch_work_runs_on_idle_capacity_and_gives_the_same_answer(split_engine: LlamaEngine) -> None:
    """Batch-class work keeps a slot free for urgent work (no preemption), sits out the decode
    steps while urgent work runs, has a step under way stopped when urgent work arrives, and
    still gives, token for token, the answer it gives alone (a stopped step is rolled back)."""
    engine = split_engine
    engine.clear_prefix_cache()
    alone, _ = await asyncio.wait_for(_batch_text(engine, [], Ticket("b", priority=20)), timeout=120)
    before = engine.scheduler_stats()
    batch_times: list[float] = []
    first_batch_token = asyncio.Event()
    floods = [
        asyncio.create_task(
            _batch_text(engine, batch_times, Ticket("b", priority=20), first_batch_token)
            if i == 0
            else _batch_text(engine, [], Ticket("b", priority=20))
        )
        for i in range(3)
    ]
    await asyncio.wait_for(first_batch_token.wait(), timeout=120)
    assert engine.scheduler_stats()["running"] == 1, "batch work left the second slot free"
    urgent_runs = []
    for i in range(5):
        urgent = Run()
        prompt = f"Count from one to {10 + i}."
        await asyncio.wait_for(_run(engine, prompt, 12, Ticket("i", priority=0), urgent), timeout=120)
        assert urgent.first_token_at is not None and urgent.done is not None
        assert urgent.done.completion_tokens == 12
        urgent_runs.append(urgent)
        await asyncio.sleep(0.05)
    results = await asyncio.wait_for(asyncio.gather(*floods), timeout=300)
    after = engine.scheduler_stats()
    for urgent in urgent_runs:
        during = [t for t in batch_times if urgent.first_token_at < t < urgent.done_at]  # type: ignore[operator]
        assert during == [], f"the batch sequence decoded {len(during)} tokens beside urgent work"
    assert after["preemptions"] == before["preemptions"], "urgent work found a free slot"
    assert after["aborted_steps"] > before["aborted_steps"], "no batch step was stopped for urgent work"
    assert [r for r in results] == [(alone, 96)] * 3, "stopped steps changed the batch's answer"
