"""Output constraints: what a generation must match, neutral of API family and engine.

A :class:`Constraint` holds a grammar in llguidance's format, built and checked here once, when a
request is parsed, so a bad schema is a 400 before any engine sees it. Build one with

- :func:`json_schema` (``response_format`` ``json_schema``, Ollama's ``format`` schema),
- :func:`json_object` (``{"type": "json_object"}``, Ollama's ``format: "json"``),
- :func:`lark` (a raw grammar in llguidance's Lark dialect), or
- :func:`tool_calls` (free text or tool calls in the model's markers, see below).

JSON schemas are enforced, never relaxed: a validation keyword the grammar cannot enforce is
refused with :class:`~hearth.errors.InvalidRequest` naming the keyword, where it is and the
request parameter. Keywords that don't constrain validity (``title``, ``description``,
vendor extensions) are ignored, as JSON Schema itself ignores them. JSON is generated compactly
(``", "`` and ``": "`` separators, no other whitespace): a small model given free whitespace
at temperature 1 can spend its whole budget on newlines.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import llguidance

from hearth.errors import InvalidRequest, Subject

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

JSON_OPTIONS: JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}

# Validation keywords the grammar enforces. Each is exercised by tests/engines/test_constraints.py.
SUPPORTED = frozenset(
    {
        "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
        "properties", "required", "additionalProperties",
        "items", "prefixItems", "minItems", "maxItems",
        "minLength", "maxLength", "pattern", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    }
)  # fmt: skip
# Validation keywords (of any draft) that constrain validity but that the grammar can't enforce.
UNSUPPORTED = frozenset(
    {
        "uniqueItems", "contains", "minContains", "maxContains", "additionalItems",
        "unevaluatedItems", "unevaluatedProperties", "patternProperties", "propertyNames",
        "minProperties", "maxProperties", "dependentRequired", "dependentSchemas", "dependencies",
        "not", "if", "then", "else", "$dynamicRef", "$recursiveRef", "extends", "disallow", "divisibleBy",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class At:
    """What a schema or grammar is in the request: its subject, and its field if the family named it."""

    subject: Subject
    param: str | None = None


OUTPUT_FORMAT = At(Subject.OUTPUT_FORMAT)
TOOLS = At(Subject.TOOLS)


def _refused(message: str, at: At) -> InvalidRequest:
    return InvalidRequest(message, subject=at.subject, param=at.param)


FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("additionalProperties", "items")


@dataclass(frozen=True)
class Constraint:
    """A checked output constraint. ``grammar`` is what an engine compiles (llguidance's format);
    ``schema`` is set when the whole output is one JSON value of that schema."""

    grammar: str
    kind: Literal["json_schema", "grammar", "tool_calls"]
    schema: Mapping[str, Any] | None = field(default=None, compare=False)


def json_schema(schema: object, *, at: At = OUTPUT_FORMAT) -> Constraint:
    """Output is one JSON value valid against ``schema``; refuses what it can't enforce.

    Cached by the schema's JSON text: a client usually sends the same schema every time.
    """
    if not isinstance(schema, dict):
        raise _refused("the JSON schema must be an object", at)
    try:
        text = json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _refused(f"the JSON schema is not JSON: {exc}", at) from exc
    return _schema_constraint(text, at)


@functools.lru_cache(maxsize=256)
def _schema_constraint(text: str, at: At) -> Constraint:
    checked = check_schema(json.loads(text), at=at)
    grammar_schema = json.dumps(for_doubles(checked), allow_nan=False)
    return Constraint(_compile_schema(grammar_schema, at), "json_schema", checked)


def json_object(*, at: At = OUTPUT_FORMAT) -> Constraint:
    """Output is one JSON object, any keys."""
    return json_schema({"type": "object"}, at=at)


def lark(grammar: str, *, at: At = OUTPUT_FORMAT) -> Constraint:
    """Output matches a grammar in llguidance's Lark dialect (``%json {...}`` inlines a schema)."""
    return Constraint(_compile_lark(grammar, at), "grammar")


def check_schema(schema: object, *, at: At) -> dict[str, Any]:
    """``schema`` itself, once it is a valid JSON schema whose every validation keyword we enforce.

    Its shape is checked against draft 7's metaschema unless it names another (``$schema``):
    jsonschema takes ~200 ms to check a 60-field schema against 2020-12's (its dynamic refs),
    ~10 ms against draft 7's. The 2020-12 keywords we accept (``prefixItems``, ``$defs``) get
    their shape checked by the walk instead.
    """
    import jsonschema  # here: it takes a few hundred ms to import, and only requests need it

    if not isinstance(schema, dict):
        raise _refused("the JSON schema must be an object", at)
    try:
        json.dumps(schema, allow_nan=False)
        validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _pointer(list(exc.absolute_path))
        raise _refused(f"invalid JSON schema at {where}: {exc.message}", at) from exc
    except (TypeError, ValueError) as exc:
        raise _refused(f"the JSON schema is not JSON: {exc}", at) from exc
    _walk(schema, [], at)
    return schema


def _walk(node: object, path: list[str | int], at: At) -> None:
    if isinstance(node, bool):
        return  # true (anything) and false (nothing) are enforceable as they are
    if not isinstance(node, dict):
        raise _refused(f"a JSON schema at {_pointer(path)} must be an object or a boolean", at)
    for key, value in node.items():
        where = _pointer([*path, key])
        if key in UNSUPPORTED:
            raise _refused(
                f"JSON schema keyword {key!r} (at {where}) is not supported: structured output "
                "cannot enforce it, and it is refused rather than ignored",
                at,
            )
        if key == "format" and value not in FORMATS:
            raise _refused(
                f"JSON schema format {value!r} (at {where}) is not supported; supported formats: "
                + ", ".join(sorted(FORMATS)),
                at,
            )
        if key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            raise _refused(
                f"JSON schema {key!r} (at {where}) must be a number (the draft-4 boolean form is not supported)",
                at,
            )
        if key == "items" and isinstance(value, list):
            raise _refused(
                f"JSON schema 'items' as an array (at {where}) is not supported; use 'prefixItems'",
                at,
            )
        if key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            raise _refused(
                f"JSON schema $ref {value!r} (at {where}) is not supported: only local refs (#/...) resolve",
                at,
            )
        if key in _SCHEMA_MAPS:
            if not isinstance(value, dict):
                raise _refused(f"JSON schema {key!r} (at {where}) must be an object", at)
            for name, sub in value.items():
                _walk(sub, [*path, key, name], at)
        elif key in _SCHEMA_LISTS:
            if not isinstance(value, list) or not value:
                raise _refused(f"JSON schema {key!r} (at {where}) must be a non-empty array", at)
            for i, sub in enumerate(value):
                _walk(sub, [*path, key, i], at)
        elif key in _SCHEMA_ONE:
            _walk(value, [*path, key], at)


def for_doubles(node: Any) -> Any:
    """The schema whose exclusive number bounds hold once the output is parsed as doubles.

    The grammar compares decimal text exactly, so ``1.50000000000000001`` passes
    ``exclusiveMinimum: 1.5``, and every JSON parser that reads numbers as doubles (Python's,
    JavaScript's) then reads 1.5, which fails it. Bounding by the next double instead keeps
    the parsed value strictly inside (rounding is monotonic), and loses only the decimals
    between the two doubles. Integer schemas are left alone: their values parse exactly.
    """
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    integer_only = node.get("type") == "integer"
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: for_doubles(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [for_doubles(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = for_doubles(value)
        elif key in _EXCLUSIVE and not integer_only and isinstance(value, int | float):
            out[key] = math.nextafter(float(value), _EXCLUSIVE[key])
        else:
            out[key] = value
    return out


_EXCLUSIVE = {"exclusiveMinimum": math.inf, "exclusiveMaximum": -math.inf}


def _pointer(path: Sequence[str | int]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "the root"


@functools.lru_cache(maxsize=256)
def _compile_schema(schema_json: str, at: At) -> str:
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema_json, overrides=JSON_OPTIONS)
    _validate(grammar, "JSON schema", at)
    return grammar


@functools.lru_cache(maxsize=256)
def _compile_lark(text: str, at: At) -> str:
    grammar = llguidance.LLMatcher.grammar_from_lark(text)
    _validate(grammar, "grammar", at)
    return grammar


def _validate(grammar: str, what: str, at: At) -> None:
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise _refused(f"{what} not supported: {messages[0] if messages else 'invalid'}", at)


# ---- tool calls ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A function the model may call; ``param`` is where the request holds its schema (errors)."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    param: str | None = None


@dataclass(frozen=True)
class ToolCallFormat:
    """How a model writes calls: each is ``open + {"name": ..., arguments_key: {...}} + close``.

    Markers are plain text. A model whose markers are special tokens names them in Lark's token
    syntax instead (``open_lark="<|python_tag|>"``), which matches that token and nothing else.
    """

    open: str = "<tool_call>\n"
    close: str = "\n</tool_call>"
    separator: str = "\n"
    arguments_key: str = "arguments"
    open_lark: str | None = None
    close_lark: str | None = None


HERMES = ToolCallFormat()  # Hermes, Qwen 2.5/3 and other ChatML tool templates

ToolMode = Literal["auto", "required", "named"]


def tool_calls(
    tools: Sequence[Tool],
    mode: ToolMode,
    *,
    name: str | None = None,
    parallel: bool = True,
    fmt: ToolCallFormat = HERMES,
    tools_at: At = TOOLS,
) -> Constraint:
    """Free text or tool calls (``auto``); one or more calls of any tool (``required``); or calls
    of the tool ``name`` only (``named``). ``parallel=False`` allows exactly one call.

    In ``auto`` the model chooses at its first bytes: text that never contains the opening marker,
    or calls, each of whose JSON follows that tool's parameters schema.
    """
    if not tools:
        raise InvalidRequest(f"tool choice {mode!r} needs at least one tool", subject=Subject.TOOL_CHOICE)
    by_name: dict[str, Tool] = {}
    for i, tool in enumerate(tools):
        where = At(Subject.TOOLS, tool.param)
        if not tool.name:
            raise _refused(f"tool {i} needs a non-empty name", where)
        if tool.name in by_name:
            raise _refused(f"two tools are named {tool.name!r}", where)
        by_name[tool.name] = tool
    if mode == "named":
        if name not in by_name:
            raise InvalidRequest(
                f"{{tool_choice}} names {name!r}, which is not among the tools", subject=Subject.TOOL_CHOICE
            )
        chosen = [by_name[name]]
    else:
        chosen = list(by_name.values())
    shapes = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.name},
                fmt.arguments_key: for_doubles(
                    check_schema(dict(tool.parameters), at=At(Subject.TOOLS, tool.param))
                ),
            },
            "required": ["name", fmt.arguments_key],
            "additionalProperties": False,
        }
        for tool in chosen
    ]
    body = {"anyOf": shapes, "x-guidance": JSON_OPTIONS}  # one %json: llguidance wants anyOf, not rule|rule
    open_term = fmt.open_lark or json.dumps(fmt.open)
    close_term = fmt.close_lark or json.dumps(fmt.close)
    lines = [
        "start: TEXT | calls" if mode == "auto" else "start: calls",
        f"calls: call ({json.dumps(fmt.separator)} call)*" if parallel else "calls: call",
        f"call: {open_term} body {close_term}",
        f"body: %json {json.dumps(body)}",
    ]
    if mode == "auto":
        lines.append(_text_rule(fmt))  # once the opening marker is written, only calls can follow
    return Constraint(_compile_lark("\n".join(lines), tools_at), "tool_calls")


def text_without_calls(fmt: ToolCallFormat = HERMES) -> Constraint:
    """Text that never holds the opening marker: for ``tool_choice: none`` after calls, whose
    markup a small model would otherwise copy into its answer."""
    return Constraint(_compile_lark(f"start: TEXT\n{_text_rule(fmt)}", TOOLS), "grammar")


def _text_rule(fmt: ToolCallFormat) -> str:
    # Without a closing ">": a small model told not to call writes ``<tool_call ref=...>`` instead.
    marker = json.dumps(fmt.open.strip().rstrip(">"))[1:-1] if fmt.open_lark is None else ""
    if not marker:
        return r"TEXT: /(?s:.+)/"
    return rf"TEXT: /(?s:.+)/ & ~/(?s:.*{_regex_literal(marker)}.*)/"


def parse_tool_calls(text: str, fmt: ToolCallFormat = HERMES) -> list[tuple[str, dict[str, Any]]] | None:
    """``[(name, arguments)]`` from output generated under :func:`tool_calls`, or None for text.

    Raises ValueError on a call that doesn't parse, which the grammar only lets happen when
    max_tokens cut the output short.
    """
    if fmt.open_lark is not None or fmt.close_lark is not None:
        raise ValueError("markers that are special tokens don't appear in the text; parse the tokens")
    if not text.startswith(fmt.open):
        return None
    if not text.endswith(fmt.close):
        raise ValueError("the tool calls were cut short")
    calls: list[tuple[str, dict[str, Any]]] = []
    for chunk in text.split(fmt.close)[:-1]:
        body = chunk.removeprefix(fmt.separator).removeprefix(fmt.open) if calls else chunk[len(fmt.open) :]
        try:
            call = json.loads(body)
            calls.append((str(call["name"]), dict(call[fmt.arguments_key])))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a tool call: {body[:80]!r}") from exc
    return calls


def _regex_literal(json_escaped: str) -> str:
    """A JSON-escaped literal as regex text (newlines stay as ``\\n`` escapes)."""
    special = set(r".^$*+?()[]{}|/")
    return "".join("\\" + c if c in special else c for c in json_escaped)
