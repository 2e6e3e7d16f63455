"""Tool calls and structured output through the OpenAI routes, on the fake engine (which walks
the real grammar): the wire shapes, streaming deltas, a conversation that continues with tool
results, and every refusal as a clear 400."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from fastapi.testclient import TestClient

from tests.helpers.wire import assert_envelope, sse_events

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 16},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER},
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


def chat(client: TestClient, **body: Any) -> Any:
    return client.post(
        "/v1/chat/completions", json={"model": "fake-chat", "messages": USER, "max_tokens": 300, **body}
    )


def test_required_and_named_calls_validate_against_their_schema(client: TestClient) -> None:
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        for seed in range(5):
            reply = chat(client, tools=TOOLS, tool_choice=choice, seed=seed, temperature=1)
            assert reply.status_code == 200, reply.text
            choice0 = reply.json()["choices"][0]
            assert choice0["finish_reason"] == "tool_calls" and choice0["message"]["content"] is None
            for call in choice0["message"]["tool_calls"]:
                assert call["type"] == "function" and call["id"].startswith("call_")
                if isinstance(choice, dict):
                    assert call["function"]["name"] == "get_weather"
                arguments = json.loads(call["function"]["arguments"])
                if call["function"]["name"] == "get_weather":
                    jsonschema.validate(arguments, WEATHER)


def test_a_named_choice_makes_exactly_one_call_when_parallel_calls_are_left_on(client: TestClient) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    for seed in range(5):
        reply = chat(client, tools=TOOLS, tool_choice=named, seed=seed, temperature=1)
        calls = reply.json()["choices"][0]["message"]["tool_calls"]
        assert [c["function"]["name"] for c in calls] == ["get_weather"]


def test_parallel_tool_calls_false_makes_one_call(client: TestClient) -> None:
    for seed in range(5):
        reply = chat(client, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, seed=seed)
        assert len(reply.json()["choices"][0]["message"]["tool_calls"]) == 1


def test_streamed_calls_arrive_in_openais_delta_format(client: TestClient) -> None:
    body = {"model": "fake-chat", "messages": USER, "max_tokens": 300, "stream": True, "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}  # fmt: skip
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        events = sse_events(reply.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    first, rest = calls[0], calls[1:]
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"]["name"] == "get_weather"
    # After a call's first delta, OpenAI sends only its index and argument text: no null keys.
    assert all(set(c) == {"index", "function"} and set(c["function"]) == {"arguments"} for c in rest)
    assert all(set(d) <= {"content", "tool_calls"} for d in deltas[1:]), "role only on the first delta"
    assert all(c["system_fingerprint"] == chunks[0]["system_fingerprint"] for c in chunks)
    arguments = "".join(c["function"]["arguments"] for c in calls)
    jsonschema.validate(json.loads(arguments), WEATHER)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_conversation_continues_with_the_tool_result(client: TestClient) -> None:
    first = chat(client, tools=TOOLS, tool_choice="required").json()["choices"][0]["message"]
    followup = [
        *USER,
        first,
        *({"role": "tool", "tool_call_id": c["id"], "content": "sunny, 21 C"} for c in first["tool_calls"]),
    ]
    reply = client.post(
        "/v1/chat/completions",
        json={
            "model": "fake-chat",
            "messages": followup,
            "max_tokens": 5,
            "tools": TOOLS,
            "tool_choice": "none",
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]  # a text answer


def test_auto_lets_the_model_answer_in_text(client: TestClient) -> None:
    reply = chat(client, tools=TOOLS, max_tokens=6)
    assert reply.status_code == 200
    message = reply.json()["choices"][0]
    assert message["finish_reason"] in {"stop", "length", "tool_calls"}


def test_json_schema_and_json_object_outputs_parse(client: TestClient) -> None:
    schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3}
        },
        "required": ["items"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "list", "schema": schema, "strict": True}}
    for seed in range(5):
        content = chat(client, response_format=fmt, seed=seed).json()["choices"][0]["message"]["content"]
        jsonschema.validate(json.loads(content), schema)
    content = chat(client, response_format={"type": "json_object"}).json()["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content), dict)


def test_bad_tool_requests_are_clear_400s(client: TestClient) -> None:
    unknown = chat(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert "nope" in str(assert_envelope(unknown, 400)["message"])
    no_tools = chat(client, tool_choice="required")
    assert "at least one tool" in str(assert_envelope(no_tools, 400)["message"])
    bad_schema = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "propertyNames": {}}}}
    ]
    error = assert_envelope(chat(client, tools=bad_schema, tool_choice="required"), 400)
    assert "propertyNames" in str(error["message"]) and error["param"] == "tools[0].function.parameters"
    orphan = [*USER, {"role": "tool", "tool_call_id": "call_missing", "content": "42"}]
    error = assert_envelope(
        client.post("/v1/chat/completions", json={"model": "fake-chat", "messages": orphan}), 400
    )
    assert "call_missing" in str(error["message"]) and error["param"] == "messages[1].tool_call_id"
    both = chat(client, tools=TOOLS, response_format={"type": "json_object"})
    assert "response format together with tools" in str(assert_envelope(both, 400)["message"])
    pattern = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "not": {"required": ["a"]}}},
    }
    error = assert_envelope(chat(client, response_format=pattern), 400)
    assert "'not'" in str(error["message"]) and error["param"] == "response_format.json_schema.schema"


def test_max_tokens_cuts_a_call_with_length(client: TestClient) -> None:
    reply = chat(client, tools=TOOLS, tool_choice="required", max_tokens=3)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["finish_reason"] == "length"
