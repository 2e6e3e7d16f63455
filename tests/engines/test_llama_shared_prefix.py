"""The prefix cache shared across slots, on the default chat model (SmolLM2, no sliding window):
a new sequence whose prompt begins with what another slot's cells hold, that slot still
generating, reuses those cells instead of computing them again, and says so in
``cached_tokens``; its greedy answer is the one a cold cache gives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hearth.config import SMOLLM2_SOURCE, ModelKind, ModelSpec
from hearth.engines.base import GenerationDone, SamplingParams, TextDelta
from hearth.engines.context import EngineContext
from hearth.engines.llama import LlamaEngine

pytestmark = pytest.mark.real

INSTRUCTIONS = " ".join(f"Tool {i}: lookup_{i}(key) returns record {i} of the table." for i in range(40))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaEngine]:
    spec = ModelSpec(
        id="smollm2", kind=ModelKind.CHAT, backend="llama.cpp", source=SMOLLM2_SOURCE,
        context_length=4096, slots=4, threads=2,
    )  # fmt: skip
    engine = LlamaEngine(spec, EngineContext(tmp_path_factory.mktemp("shared-prefix")))
    engine.load()
    yield engine
    engine.close()


async def _answer(engine: LlamaEngine, prompt: list[int], tokens: int) -> tuple[str, GenerationDone]:
    text: list[str] = []
    async for event in engine.generate(prompt, SamplingParams(max_tokens=tokens, temperature=0.0)):
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
