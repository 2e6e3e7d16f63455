"""The constraint compiler, without a model: accepted schemas are enforced, the rest are refused.

Enforcement is checked by fuzzing: seeded random walks over bytes under each grammar's own mask
(grammar_walk.py) must all produce JSON that ``jsonschema`` validates, formats included.
"""

from __future__ import annotations

import datetime
import json
import random
import re
from pathlib import Path
from typing import Any

import jsonschema
import llguidance
import pytest

from hearth.config import ModelKind, ModelSpec
from hearth.engines import constraints
from hearth.engines.base import GenerationDone, SamplingParams, TextDelta
from hearth.engines.constraints import HERMES, Tool, ToolCallFormat
from hearth.engines.context import EngineContext
from hearth.engines.fake import FakeChatEngine
from hearth.engines.grammar_walk import byte_tokenizer, walk
from hearth.errors import InvalidRequest, Subject

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: str) -> bool:
    """RFC 3339: Python parses it once a leap second (:60, which RFC 3339 allows) is made :59."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", value):
        return False
    datetime.datetime.fromisoformat(re.sub(r":60(?=[.zZ+-])", ":59", value.upper().replace("Z", "+00:00")))
    return True


@FORMATS.checks("time")
def _time(value: str) -> bool:
    return bool(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]\d\d:\d\d)", value))


@FORMATS.checks("duration")
def _duration(value: str) -> bool:
    pattern = r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?"
    return bool(re.fullmatch(pattern, value))


@FORMATS.checks("hostname")
def _hostname(value: str) -> bool:
    label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    return len(value) <= 253 and bool(re.fullmatch(rf"{label}(\.{label})*", value))


STRING = {"type": "string", "maxLength": 12}
SUITE: dict[str, dict[str, Any]] = {
    "nested objects": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {"name": STRING, "address": {"type": "object", "properties": {"city": STRING}}},
                "required": ["name", "address"],
                "additionalProperties": False,
            }
        },
        "required": ["user"],
    },
    "enums and const": {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", 3, None]}, "kind": {"const": "fixed"}},
        "required": ["color", "kind"],
    },
    "bounded arrays": {
        "type": "array",
        "items": {"type": "integer", "minimum": -5, "maximum": 5},
        "minItems": 2,
        "maxItems": 4,
    },
    "optional fields": {
        "type": "object",
        "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}, "c": STRING},
        "required": ["a"],
        "additionalProperties": False,
    },
    "number ranges": {
        "type": "object",
        "properties": {
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
            "open": {"type": "number", "exclusiveMinimum": 1.5, "exclusiveMaximum": 2.5},
            "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
            "even": {"type": "integer", "multipleOf": 2, "minimum": 0, "maximum": 100},
            "half": {"type": "number", "multipleOf": 0.5, "minimum": 0, "maximum": 10},
        },
        "required": ["ratio", "open", "year", "even", "half"],
    },
    "string lengths and patterns": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 3, "maxLength": 3},
            "word": {"type": "string", "pattern": "^[a-z]{2,5}$"},
            "unanchored": {"type": "string", "pattern": "ab+", "maxLength": 8},
        },
        "required": ["code", "word", "unanchored"],
    },
    "formats": {
        "type": "object",
        "properties": {f: {"type": "string", "format": f} for f in sorted(constraints.FORMATS)},
        "required": sorted(constraints.FORMATS),
    },
    "anyOf, oneOf (disjoint), allOf": {
        "type": "object",
        "properties": {
            "either": {"anyOf": [{"type": "integer"}, STRING]},
            "one": {"oneOf": [{"type": "boolean"}, {"type": "null"}]},
            "both": {"allOf": [{"type": "integer", "minimum": 3}, {"maximum": 7}]},
        },
        "required": ["either", "one", "both"],
    },
    "refs, tuples and additionalProperties": {
        "$defs": {
            "point": {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "integer"}],
                "items": False,
            }
        },
        "type": "object",
        "properties": {"at": {"$ref": "#/$defs/point"}},
        "additionalProperties": {"type": "integer", "maximum": 9},
        "required": ["at"],
    },
    "nullable type list": {"type": ["string", "null"], "maxLength": 4},
}


def _fuzz(constraint: constraints.Constraint, seeds: range) -> list[bytes]:
    outputs = []
    for seed in seeds:
        output, complete = walk(constraint, random.Random(seed), max_bytes=4000, plain=seed % 2 == 0)
        assert complete, output
        outputs.append(output)
    return outputs


@pytest.mark.parametrize("name", list(SUITE))
def test_every_accepted_schema_is_enforced(name: str) -> None:
    schema = SUITE[name]
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMATS)
    for output in _fuzz(constraints.json_schema(schema), range(40)):
        validator.validate(json.loads(output.decode("utf-8")))  # strict UTF-8, then the schema


@pytest.mark.parametrize("tools", [False, True])
def test_exclusive_bounds_hold_after_parsing_as_doubles(tools: bool) -> None:
    """``1.50000000000000001`` is above 1.5 as a decimal, but reads as 1.5 in every double-based
    parser: the grammar must refuse it (seen from gemma at temperature 1)."""
    schema = {"type": "object", "properties": {"x": {"type": "number", "exclusiveMinimum": 1.5,
              "exclusiveMaximum": 2.5}}, "required": ["x"], "additionalProperties": False}  # fmt: skip
    if tools:
        constraint = constraints.tool_calls([Tool("f", schema)], mode="required")
        wrap = lambda value: f'<tool_call>\n{{"name": "f", "arguments": {{"x": {value}}}}}\n</tool_call>'  # noqa: E731
    else:
        constraint = constraints.json_schema(schema)
        wrap = lambda value: f'{{"x": {value}}}'  # noqa: E731

    def accepts(value: str) -> bool:
        matcher = llguidance.LLMatcher(byte_tokenizer(), constraint.grammar, log_level=0)
        return matcher.consume_tokens(list(wrap(value).encode())) and matcher.is_accepting()

    assert accepts("1.51") and accepts("2") and accepts("2.48")
    for value in ("1.5", "1.50000000000000001", "2.4999999999999999", "2.5"):
        assert not accepts(value), value


def test_json_object_and_compact_separators() -> None:
    for output in _fuzz(constraints.json_object(), range(20)):
        assert isinstance(json.loads(output), dict)
    output, _ = walk(constraints.json_schema(SUITE["optional fields"]), random.Random(0), max_bytes=100)
    assert b"\n" not in output and not output.startswith(b"{ ")


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "contains": {"type": "integer"}}, "contains"),
        ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties"),
        ({"type": "object", "propertyNames": {"maxLength": 2}}, "propertyNames"),
        ({"type": "object", "minProperties": 1}, "minProperties"),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        ({"not": {"type": "null"}}, "not"),
        ({"if": {"type": "integer"}, "then": {"minimum": 1}}, "if"),
        ({"type": "object", "properties": {"deep": {"type": "array", "uniqueItems": True}}}, "uniqueItems"),
        ({"type": "string", "format": "uri"}, "'uri'"),
        ({"type": "number", "minimum": 1, "exclusiveMinimum": True}, "exclusiveMinimum"),
        ({"type": "array", "items": [{"type": "integer"}]}, "items"),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "integer"}]},
            "prefixItems",
        ),
        ({"$ref": "https://example.com/schema.json"}, "$ref"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "oneOf"),  # overlapping: llguidance refuses
        ({"type": "string", "pattern": "(?=a)a"}, "look-around"),
        ({"type": "integer", "minimum": 5, "maximum": 3}, "minimum"),
    ],
)
def test_unenforceable_features_are_refused_by_name(schema: dict[str, Any], keyword: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        constraints.json_schema(
            schema, at=constraints.At(Subject.OUTPUT_FORMAT, "response_format.json_schema.schema")
        )
    assert keyword in caught.value.message
    assert caught.value.param == "response_format.json_schema.schema"
    assert caught.value.subject is Subject.OUTPUT_FORMAT


def test_refusal_says_where_the_keyword_is() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(InvalidRequest, match=r"/properties/tags/uniqueItems"):
        constraints.json_schema(schema)


@pytest.mark.parametrize(
    "schema",
    [{"type": "strin"}, {"minLength": -1}, {"required": "a"}, [1], "x", {"prefixItems": {}}, {"$defs": []},
     {"anyOf": []}, {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "strin"},
     {"type": "number", "maximum": float("nan")}],
)  # fmt: skip
def test_invalid_schemas_are_refused(schema: object) -> None:
    with pytest.raises(InvalidRequest):
        constraints.json_schema(schema)


def test_annotations_and_unknown_keywords_are_ignored() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "T", "description": "d",
              "type": "string", "maxLength": 3, "examples": ["a"], "x-vendor": 1}  # fmt: skip
    for output in _fuzz(constraints.json_schema(schema), range(5)):
        assert len(json.loads(output)) <= 3


def test_lark_grammars() -> None:
    c = constraints.lark('start: "yes" | "no"')
    assert {walk(c, random.Random(s), max_bytes=10)[0] for s in range(20)} == {b"yes", b"no"}
    with pytest.raises(InvalidRequest, match="grammar"):
        constraints.lark("start: undefined_rule")


# ---- tool calls ---------------------------------------------------------------------------------

WEATHER = Tool("get_weather", {"type": "object", "properties": {"city": STRING}, "required": ["city"],
                               "additionalProperties": False})  # fmt: skip
TIME = Tool(
    "get_time", {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"]}
)
CALL = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.S)


def _calls(output: bytes, fmt: ToolCallFormat = HERMES) -> list[dict[str, Any]]:
    text = output.decode()
    calls = [json.loads(body) for body in CALL.findall(text)]
    assert CALL.sub("", text).strip("\n") == "", text  # nothing but calls and separators
    parsed = constraints.parse_tool_calls(text, fmt)
    assert parsed == [(c["name"], c[fmt.arguments_key]) for c in calls]
    return calls


def _check(call: dict[str, Any]) -> None:
    tool = {t.name: t for t in (WEATHER, TIME)}[call["name"]]
    assert set(call) == {"name", "arguments"}
    jsonschema.validate(call["arguments"], dict(tool.parameters))


def test_required_tool_calls_always_call_a_tool_with_valid_arguments() -> None:
    c = constraints.tool_calls([WEATHER, TIME], "required")
    names = set()
    for output in _fuzz(c, range(30)):
        calls = _calls(output)
        assert calls
        for call in calls:
            _check(call)
            names.add(call["name"])
    assert names == {"get_weather", "get_time"}


def test_named_tool_choice_calls_only_that_tool_once_without_parallel() -> None:
    c = constraints.tool_calls([WEATHER, TIME], "named", name="get_time", parallel=False)
    for output in _fuzz(c, range(20)):
        calls = _calls(output)
        assert len(calls) == 1 and calls[0]["name"] == "get_time"
        _check(calls[0])


def test_auto_is_text_without_the_marker_or_valid_calls() -> None:
    c = constraints.tool_calls([WEATHER, TIME], "auto")
    text, complete = walk(c, random.Random(0), max_bytes=200, prefer=b"It is sunny.")
    assert (text, complete) == (b"It is sunny.", True)
    call, complete = walk(c, random.Random(0), max_bytes=400, prefer=b"<tool_call>\n")
    assert complete and all(_check(x) is None for x in _calls(call))
    for output in _fuzz(c, range(30)):
        if b"<tool_call>" in output:
            for x in _calls(output):
                _check(x)


def test_text_without_calls_never_holds_the_marker() -> None:
    c = constraints.text_without_calls()
    text, complete = walk(c, random.Random(0), max_bytes=200, prefer=b"It is sunny in Paris.")
    assert (text, complete) == (b"It is sunny in Paris.", True)
    copied, _ = walk(c, random.Random(0), max_bytes=200, prefer=b'<tool_call>\n{"name": "get_weather"')
    assert b"<tool_call>" not in copied
    matcher = llguidance.LLMatcher(byte_tokenizer(), c.grammar, log_level=0)
    assert not (matcher.consume_tokens(list(b"ok <tool_call>")) and matcher.is_accepting())
    variant = llguidance.LLMatcher(byte_tokenizer(), c.grammar, log_level=0)
    assert not (variant.consume_tokens(list(b'<tool_call ref="x">')) and variant.is_accepting())


def test_custom_markers_and_arguments_key() -> None:
    fmt = ToolCallFormat(open="[CALL]", close="[/CALL]", separator="", arguments_key="parameters")
    c = constraints.tool_calls([WEATHER], "required", fmt=fmt, parallel=False)
    output, _ = walk(c, random.Random(1), max_bytes=300)
    assert output.startswith(b'[CALL]{"name": "get_weather", "parameters": {') and output.endswith(b"[/CALL]")
    [(name, arguments)] = constraints.parse_tool_calls(output.decode(), fmt) or []
    assert name == "get_weather" and set(arguments) >= {"city"}


def test_parse_tool_calls_text_and_cut_calls() -> None:
    assert constraints.parse_tool_calls("Just text.") is None
    with pytest.raises(ValueError):
        constraints.parse_tool_calls('<tool_call>\n{"name": "get_weather", "argu')


@pytest.mark.parametrize(
    ("tools", "kwargs", "subject", "param"),
    [
        ([], {"mode": "required"}, Subject.TOOL_CHOICE, None),
        ([WEATHER], {"mode": "named", "name": "nope"}, Subject.TOOL_CHOICE, None),
        ([WEATHER, WEATHER], {"mode": "auto"}, Subject.TOOLS, None),
        ([Tool("", {})], {"mode": "auto"}, Subject.TOOLS, None),
        ([WEATHER, Tool("bad", {"type": "array", "uniqueItems": True}, param="tools[1]")], {"mode": "auto"},
         Subject.TOOLS, "tools[1]"),
        ([Tool("bad", {"type": "nope"}, param="tools[0].function.parameters")], {"mode": "auto"},
         Subject.TOOLS, "tools[0].function.parameters"),
    ],
)  # fmt: skip
def test_bad_tools_are_refused(
    tools: list[Tool], kwargs: dict[str, Any], subject: Subject, param: str | None
) -> None:
    """The core names the subject; the exact field is only ever the one the family's mapper gave."""
    with pytest.raises(InvalidRequest) as caught:
        constraints.tool_calls(tools, **kwargs)
    assert (caught.value.subject, caught.value.param) == (subject, param)


# ---- the fake engine ----------------------------------------------------------------------------


async def _fake(params: SamplingParams) -> tuple[str, GenerationDone]:
    engine = FakeChatEngine(
        ModelSpec(id="f", kind=ModelKind.CHAT, backend="fake", source="-"), EngineContext(Path("-"))
    )
    engine.load()
    text, done = "", None
    async for event in engine.generate([1, 2, 3], params):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            done = event
    assert isinstance(done, GenerationDone)
    return text, done


async def test_fake_engine_answers_constrained_requests_with_valid_json() -> None:
    schema = SUITE["nested objects"]
    for seed in range(5):
        text, done = await _fake(
            SamplingParams(max_tokens=200, seed=seed, constraint=constraints.json_schema(schema))
        )
        jsonschema.validate(json.loads(text), schema)
        assert done.finish_reason == "stop" and done.completion_tokens <= 200


async def test_fake_engine_cuts_constrained_output_at_max_tokens() -> None:
    text, done = await _fake(
        SamplingParams(max_tokens=3, constraint=constraints.json_schema(SUITE["formats"]))
    )
    assert done.finish_reason == "length" and done.completion_tokens == 3 and len(text) <= 12


async def test_fake_engine_tool_calls() -> None:
    text, done = await _fake(
        SamplingParams(max_tokens=100, constraint=constraints.tool_calls([WEATHER], "required"))
    )
    assert done.finish_reason == "stop"
    assert {c["name"] for c in _calls(text.encode())} == {"get_weather"}
