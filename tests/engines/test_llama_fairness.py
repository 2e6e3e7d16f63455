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


NO_END = {0: -100.0, 1: -100.0, 2: -100.0}  # SmolLM2's end tokens: every run takes all its tokens


async def _run(engine: LlamaEngine, text: str, tokens: int, ticket: Ticket, run: Run) -> None:
    params = SamplingParams(max_tokens=tokens, temperature=0.0, ticket=ticket, logit_bias=NO_END)
    async for event in engine.generate(engine.tokenize(text), params):
        if isinstance(event, TextDelta) and run.first_token_at is None:
            run.first_token_at = time.monotonic()
            run.first.set()
        elif isinstance(event, GenerationDone):
            run.done = event


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
