"""Hearth's answers checked against each API family's published description.

OpenAI: the OpenAPI description (tests/specs/openai-openapi.json, the subset of schemas that
answers use, with its source revision); OIP v2: KServe's REST description
(tests/specs/open-inference-rest.json); Anthropic and Ollama publish no schema, so their answers
are checked against the response types their official Python clients declare (the ``anthropic``
and ``ollama`` packages the dev extra installs), as those clients would parse them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import anthropic.types as anthropic_types
import jsonschema
from pydantic import BaseModel, TypeAdapter
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPECS = Path(__file__).parent.parent / "specs"
_OPENAI = "urn:openai-openapi"
_OIP = "urn:open-inference-rest"


def _nullable(node: Any) -> Any:
    """OpenAPI's ``nullable: true`` (kept by OpenAI's 3.1 description and KServe's 3.0 one) as
    JSON Schema says it: the schema, or null."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry()
    for uri, name in ((_OPENAI, "openai-openapi.json"), (_OIP, "open-inference-rest.json")):
        document = _nullable(json.loads((SPECS / name).read_text()))
        registry = registry.with_resource(uri, Resource.from_contents(document, DRAFT202012))
    return registry


@cache
def _validator(uri: str, schema: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": f"{uri}#/components/schemas/{schema}"}, registry=_registry()
    )


def _check(uri: str, schema: str, body: Any) -> None:
    errors = sorted(_validator(uri, schema).iter_errors(body), key=lambda e: len(list(e.absolute_path)))
    if errors:
        # anyOf failures report the branch that got furthest: the one that names a real mismatch.
        best = jsonschema.exceptions.best_match(errors)
        where = "/".join(str(p) for p in best.absolute_path)
        raise AssertionError(f"not a valid {schema} at /{where}: {best.message}\n{json.dumps(body)[:2000]}")


def openai(body: Any, schema: str) -> None:
    """``body`` is a valid ``schema`` (a name under components/schemas) of OpenAI's description."""
    _check(_OPENAI, schema, body)


@cache
def _response_event_schemas() -> dict[str, str]:
    """Each Responses stream event type, and the schema the description gives it."""
    schemas = json.loads((SPECS / "openai-openapi.json").read_text())["components"]["schemas"]
    by_type: dict[str, str] = {}
    for branch in schemas["ResponseStreamEvent"]["anyOf"]:
        name = branch["$ref"].rsplit("/", 1)[-1]
        for event_type in schemas[name]["properties"]["type"].get("enum", []):
            by_type[event_type] = name
    return by_type


def openai_response_event(body: Any) -> None:
    """A Responses API stream event, against the schema of its own type (the union's errors
    would name every other branch)."""
    name = _response_event_schemas().get(body.get("type"))
    assert name is not None, f"not an event type of the description: {body.get('type')!r}"
    _check(_OPENAI, name, body)


def openai_completion_chunk(body: Any) -> None:
    """A legacy completions stream chunk. The description has one schema for the body and the
    chunks, whose ``finish_reason`` it does not let be null, but OpenAI's own streams send null
    until the last chunk (as its chat chunks' schema says): that one field is checked apart."""
    choices = [
        {**choice, "finish_reason": choice.get("finish_reason") or "stop"} for choice in body["choices"]
    ]
    assert all(c.get("finish_reason", "") is None or c.get("finish_reason") for c in body["choices"])
    _check(_OPENAI, "CreateCompletionResponse", {**body, "choices": choices})


def oip(body: Any, schema: str) -> None:
    _check(_OIP, schema, body)


_ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(anthropic_types.RawMessageStreamEvent)


def anthropic_message(body: Any) -> None:
    anthropic_types.Message.model_validate(body)


def anthropic_event(body: Any) -> None:
    """A stream event as the SDK reads it; ``ping`` and ``error`` events, which Anthropic's docs
    list and the SDK handles before its event union, are checked on their own."""
    if body.get("type") == "ping":
        assert body == {"type": "ping"}, body
    elif body.get("type") == "error":
        anthropic_error(body)
    else:
        _ANTHROPIC_EVENT.validate_python(body)


def anthropic_error(body: Any) -> None:
    anthropic_types.ErrorResponse.model_validate(body)


def anthropic_token_count(body: Any) -> None:
    anthropic_types.MessageTokensCount.model_validate(body)


def ollama_body(body: Any, kind: type[BaseModel]) -> None:
    """As the ``ollama`` client parses it: ``kind`` is one of its response types."""
    assert issubclass(kind, BaseModel) and kind.__module__.startswith("ollama")
    kind.model_validate(body)
