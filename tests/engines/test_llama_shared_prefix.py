"""The prefix cache shared across slots, on the default chat model (SmolLM2, no sliding window):
a new sequence whose prompt begins with what another slot's cells hold, that slot still
generating, reuses those cells instead of computing them again, and says so in
``cached_tokens``; its greedy answer is the one a cold cache gives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from hearth.engines.base import GenerationDone, SamplingParams, TextDelta
from hearth.engines.llama import LlamaEngine
from tests.engines.test_llama_real import TeacherForced
from tests.helpers.llama import smollm2_engine

pytestmark = pytest.mark.real

INSTRUCTIONS = " ".join(f"Tool {i}: lookup_{i}(key) returns record {i} of the table." for i in range(40))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaEngine]:
    with smollm2_engine(tmp_path_factory.mktemp("shared-prefix"), slots=4, context_length=4096) as loaded:
        yield loaded


async def _answer(
    engine: LlamaEngine, prompt: list[int], tokens: int, cache_key: str | None = None
) -> tuple[str, GenerationDone]:
    text: list[str] = []
    params = SamplingParams(max_tokens=tokens, temperature=0.0, cache_key=cache_key)
    async for event in engine.generate(prompt, params):
        if isinstance(event, TextDelta):
            text.append(event.text)
        else:
            return "".join(text), event
    raise AssertionError("no GenerationDone")


async def test_a_running_slots_prefix_is_shared_with_a_new_sequence(engine: LlamaEngine) -> None:
    first = engine.tokenize(f"{INSTRUCTIONS}\nuser: What does lookup_3 return?\nassistant:")
    second = engine.tokenize(f"{INSTRUCTIONS}\nuser: Which tool reads record 7?\nassistant:")
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert shared > 400
    engine.clear_prefix_cache()
    before = engine.scheduler_stats()["shared_prefixes"]
    running = engine.generate(first, SamplingParams(max_tokens=64, temperature=0.0))
    assert isinstance(await anext(running), TextDelta)  # its prompt's cells are computed
    warm_text, warm = await _answer(engine, second, 12)
    async for _ in running:  # the first goes on to its end
        pass
    assert warm.cached_tokens == shared
    engine.clear_prefix_cache()
    cold_text, cold = await _answer(engine, second, 12)
    assert cold.cached_tokens == 0
    assert warm_text == cold_text, "shared cells give the continuation a cold cache gives"
    assert engine.scheduler_stats()["shared_prefixes"] == before + 1, "the running slot's cells were shared"


async def _forced_rows(engine: LlamaEngine, prompt: list[int], forced: list[int]) -> tuple[list[Any], int]:
    sampler = TeacherForced(forced, engine.n_vocab)
    cached = 0
    async for event in engine.generate(prompt, SamplingParams(max_tokens=len(forced)), sampler=sampler):
        if isinstance(event, GenerationDone):
            cached = event.cached_tokens
    return sampler.rows, cached


async def test_conversations_past_the_slots_come_back_from_the_host_cache(engine: LlamaEngine) -> None:
    """Six conversations over four slots: when a conversation's slot has been taken by another,
    its next turn is restored from host memory (every token of its history, none recomputed)
    and the model sees what it saw had the conversation kept its slot.

    Compared teacher-forced, step by step, as test_llama_real compares batched with solo logits:
    the restored cells sit elsewhere in the KV pool, which changes the order attention sums in
    (the same history placed later in the pool, never leaving its slot, flips a near-tie greedy
    token of this prompt too); a wrong position or sequence gives a KL of whole nats."""
    histories = [
        engine.tokenize(f"Conversation {n}. " + " ".join(f"fact {n}.{i} is {i * n}." for i in range(60)))
        for n in range(6)
    ]
    follow_up = histories[0] + engine.tokenize(" Question: what is fact 0.3?")
    forced = engine.tokenize(" Answer: fact 0.3 is 0, as every fact 0.i is.")
    engine.clear_prefix_cache()
    await _answer(engine, histories[0], 4)
    kept, kept_cached = await _forced_rows(engine, follow_up, forced)  # straight from its slot
    assert kept_cached == len(histories[0])

    engine.clear_prefix_cache()
    for history in histories:  # each takes a slot; the fifth and sixth overwrite the oldest two
        await _answer(engine, history, 4)
    before = engine.scheduler_stats()
    assert before["host_cache_entries"] >= 2
    restored, restored_cached = await _forced_rows(engine, follow_up, forced)
    after = engine.scheduler_stats()
    assert after["host_cache_restores"] == before["host_cache_restores"] + 1
    assert restored_cached == len(histories[0]), "the whole first turn came back, not recomputed"
    worst = max(float(np.sum(np.exp(a) * (a - b))) for a, b in zip(kept, restored, strict=True))
    print(f"worst KL(kept || restored) = {worst:.2e}")
    assert worst < 0.1, "restored cells are the cells the slot held"

    engine.clear_prefix_cache()
    assert engine.scheduler_stats()["host_cache_entries"] == 0
    _, cold_cached = await _forced_rows(engine, follow_up, forced)
    assert cold_cached == 0


async def _kept_rows(
    engine: LlamaEngine, history: list[int], follow_up: list[int], forced: list[int]
) -> list[Any]:
    """The follow-up's teacher-forced rows when its history never left its slot."""
    engine.clear_prefix_cache()
    await _answer(engine, history, 4)
    rows, cached = await _forced_rows(engine, follow_up, forced)
    assert cached == len(history)
    return rows


def _worst_kl(expected: list[Any], seen: list[Any]) -> float:
    return max(float(np.sum(np.exp(a) * (a - b))) for a, b in zip(expected, seen, strict=True))


async def test_the_host_cache_keeps_a_shared_prefix_once(engine: LlamaEngine) -> None:
    """Agents sharing a long instruction prefix: the host cache keeps that prefix once and each
    conversation's own cells apart; a conversation comes back on top of a slot that holds the
    prefix, or, once no slot holds it any more, on top of the stored prefix."""
    agents = [
        engine.tokenize(
            f"{INSTRUCTIONS}\nAgent {n}: " + " ".join(f"note {n}.{i} = {i + n}." for i in range(25))
        )
        for n in range(6)
    ]
    shared = min(
        next(i for i, (a, b) in enumerate(zip(agents[0], other, strict=False)) if a != b)
        for other in agents[1:]
    )
    assert shared > 256 and len(agents[0]) - shared > 64
    follow_ups = [agent + engine.tokenize(" Which note equals 3?") for agent in agents]
    forced = engine.tokenize(" Note 0.3 = 3, as the list says.")
    kept = [await _kept_rows(engine, agents[n], follow_ups[n], forced) for n in (0, 1)]

    engine.clear_prefix_cache()
    for agent in agents:  # agents 4 and 5 take the slots of agents 0 and 1
        await _answer(engine, agent, 4)
    stats = engine.scheduler_stats()
    assert stats["host_cache_entries"] == 3, "the prefix once, and the two agents that lost their slots"
    assert stats["host_cache_tokens"] < 2 * len(agents[0]) - shared // 2, (
        "the two agents' prefix is kept once"
    )
    restored, cached = await _forced_rows(engine, follow_ups[0], forced)  # on a slot's prefix
    assert cached == len(agents[0])
    assert engine.scheduler_stats()["host_cache_restores"] == stats["host_cache_restores"] + 1
    assert _worst_kl(kept[0], restored) < 0.1, "restored cells are the cells the slot held"

    for n in range(4):  # unrelated work takes every slot: the prefix is only in the host cache
        await _answer(engine, engine.tokenize(f"Unrelated {n}: " + "lorem ipsum dolor " * (60 + n)), 2)
    from_store, cached = await _forced_rows(engine, follow_ups[1], forced)
    assert cached == len(agents[1]), "agent 1 came back on the stored prefix"
    assert _worst_kl(kept[1], from_store) < 0.1


async def test_a_prompt_cache_key_replaces_its_own_stale_cache_first(engine: LlamaEngine) -> None:
    """OpenAI's prompt_cache_key as a slot hint: a request that reuses nothing takes the slot its
    key used last, not the least recently used one, so other keys' caches stay in their slots."""
    workspaces = {
        key: engine.tokenize(f"Workspace {key}. " + " ".join(f"item {key}{i} costs {i}." for i in range(40)))
        for key in "abcd"
    }
    engine.clear_prefix_cache()
    for key, prompt in workspaces.items():  # a's slot is the least recently used
        await _answer(engine, prompt, 2, cache_key=key)
    await _answer(
        engine, engine.tokenize("A new task that shares nothing with the workspaces."), 2, cache_key="c"
    )
    before = engine.scheduler_stats()
    _, done = await _answer(engine, workspaces["a"] + engine.tokenize(" Total?"), 2, cache_key="a")
    assert done.cached_tokens == len(workspaces["a"])
    assert engine.scheduler_stats()["host_cache_restores"] == before["host_cache_restores"], "a kept its slot"


async def test_agents_that_arrive_together_compute_their_shared_prefix_once(engine: LlamaEngine) -> None:
    """Four prompts with one long shared prefix, submitted at once: the first prefills it and
    the others, waiting their turn for the batch, share its cells once they exist."""
    prompts = [
        engine.tokenize(f"{INSTRUCTIONS}\nuser: What does lookup_{n} return?\nassistant:") for n in range(4)
    ]
    shared = next(i for i, (a, b) in enumerate(zip(prompts[0], prompts[1], strict=False)) if a != b)
    engine.clear_prefix_cache()
    before = engine.scheduler_stats()
    answers = await asyncio.gather(*(_answer(engine, prompt, 4) for prompt in prompts))
    computed = engine.scheduler_stats()["batched_tokens"] - before["batched_tokens"]
    cached = sorted(done.cached_tokens for _, done in answers)
    assert cached[0] == 0 and all(c >= shared - 1 for c in cached[1:]), cached
    assert computed < len(prompts[0]) + 3 * (len(prompts[0]) - shared) + 4 * 4, "the prefix was computed once"
