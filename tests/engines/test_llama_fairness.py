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
    [(Ticket("flood"), Ticket("quiet")), (Ticket("same", priority=20), Ticket("same", priority=0))],
    ids=["a key below its share", "urgent over batch"],
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


async def test_batch_work_sits_out_the_decode_steps_while_urgent_work_runs(engine: LlamaEngine) -> None:
    """Batch-class work runs on idle capacity: with a slot free for the urgent request, the
    batch sequence keeps its slot but produces nothing between the urgent request's first token
    and its end, then runs to its own end."""
    engine.clear_prefix_cache()
    batch_token_times: list[float] = []
    batch = Run()

    async def batch_run() -> None:
        params = SamplingParams(
            max_tokens=96, temperature=0.0, ticket=Ticket("b", priority=20), logit_bias=NO_END
        )
        async for event in engine.generate(engine.tokenize("Write a long story about a lighthouse."), params):
            if isinstance(event, TextDelta):
                batch_token_times.append(time.monotonic())
                batch.first.set()
            elif isinstance(event, GenerationDone):
                batch.done = event

    task = asyncio.create_task(batch_run())
    await asyncio.wait_for(batch.first.wait(), timeout=120)
    urgent = Run()
    await asyncio.wait_for(
        _run(engine, "Count from one to twenty.", 24, Ticket("i", priority=0), urgent), timeout=120
    )
    assert urgent.first_token_at is not None and urgent.done is not None
    assert urgent.done.completion_tokens == 24
    during = [t for t in batch_token_times if urgent.first_token_at < t < urgent.done_at]
    assert during == [], f"the batch sequence decoded {len(during)} tokens beside urgent work"
    await asyncio.wait_for(task, timeout=300)
    assert batch.done is not None and batch.done.completion_tokens == 96
