"""The Anthropic Messages routes on the fake engine: shapes, streaming, stops, content, tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers.anthropic import MESSAGE, assert_error, named_events


def _text(reply: dict[str, Any]) -> str:
    return "".join(b["text"] for b in reply["content"] if b["type"] == "text")


def test_message_has_anthropic_shape(client: TestClient) -> None:
    reply = client.post("/v1/messages", json=MESSAGE)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}
    assert body["id"].startswith("msg_") and body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "fake-chat"
    assert len(body["content"]) == 1 and body["content"][0]["type"] == "text"
    assert len(body["content"][0]["text"].split()) == 5
    assert (body["stop_reason"], body["stop_sequence"]) == ("max_tokens", None)
    usage = body["usage"]
    assert usage["output_tokens"] == 5 and usage["input_tokens"] > 0
    assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] == 0
    assert reply.headers["request-id"] == reply.headers["x-request-id"]
    # An alias is echoed as asked, as the model field of every family is.
    assert client.post("/v1/messages", json={**MESSAGE, "model": "fc"}).json()["model"] == "fc"


def test_stop_sequence_is_reported(client: TestClient) -> None:
    words = _text(client.post("/v1/messages", json={**MESSAGE, "max_tokens": 6}).json()).split()
    body = {**MESSAGE, "max_tokens": 6, "stop_sequences": ["never-generated", words[2]]}
    reply = client.post("/v1/messages", json=body).json()
    assert (reply["stop_reason"], reply["stop_sequence"]) == ("stop_sequence", words[2])
    assert _text(reply).split() == words[:2]
    with client.stream("POST", "/v1/messages", json={**body, "stream": True}) as streamed:
        events = named_events(streamed.read().decode())
    delta = next(data for name, data in events if name == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": words[2]}


def test_stream_is_anthropics_exact_event_sequence(client: TestClient) -> None:
    whole = client.post("/v1/messages", json=MESSAGE).json()
    with client.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["request-id"]
        events = named_events(reply.read().decode())
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["content"] == [] and start["model"] == "fake-chat"
    assert start["stop_reason"] is None and start["stop_sequence"] is None
    assert start["usage"]["input_tokens"] == whole["usage"]["input_tokens"]
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert all(data["index"] == 0 for _, data in events[3:8])
    deltas = [data["delta"] for _, data in events[3:8]]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert "".join(d["text"] for d in deltas) == _text(whole)
    assert events[8][1] == {"type": "content_block_stop", "index": 0}
    final = events[9][1]
    assert final["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == 5
    assert final["usage"]["input_tokens"] == whole["usage"]["input_tokens"]
    assert events[10][1] == {"type": "message_stop"}


def test_system_as_string_or_blocks_and_count_tokens(client: TestClient) -> None:
    def count(**extra: Any) -> int:
        reply = client.post("/v1/messages/count_tokens", json={**MESSAGE, **extra})
        assert reply.status_code == 200, reply.text
        assert set(reply.json()) == {"input_tokens"}
        return int(reply.json()["input_tokens"])

    bare = count()
    assert bare == client.post("/v1/messages", json=MESSAGE).json()["usage"]["input_tokens"]
    as_string = count(system="be brief please")
    blocks = [
        {"type": "text", "text": "be brief"},
        {"type": "text", "text": "please", "cache_control": {"type": "ephemeral"}},
    ]
    assert count(system=blocks) == as_string > bare
    # count_tokens needs no max_tokens; a sent one is ignored.
    no_max = {k: v for k, v in MESSAGE.items() if k != "max_tokens"}
    assert client.post("/v1/messages/count_tokens", json=no_max).json() == {"input_tokens": bare}
    message = client.post("/v1/messages", json={**MESSAGE, "system": blocks}).json()
    usage = message["usage"]
    # The breakpoint on the last system block: the prompt up to it was written to the cache.
    assert (
        usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
        == as_string
    )
    assert usage["cache_creation_input_tokens"] > 0


def test_content_blocks_and_a_tool_conversation(client: TestClient) -> None:
    conversation = [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    body = {**MESSAGE, "messages": conversation}
    reply = client.post("/v1/messages", json=body)
    assert reply.status_code == 200, reply.text
    counted = client.post("/v1/messages/count_tokens", json=body).json()["input_tokens"]
    assert counted == reply.json()["usage"]["input_tokens"]
    # The tool result reaches the prompt.
    shorter = [
        *conversation[:2],
        {
            **conversation[2],
            "content": [{**conversation[2]["content"][0], "content": "sunny"}, conversation[2]["content"][1]],
        },
    ]
    assert (
        client.post("/v1/messages/count_tokens", json={**MESSAGE, "messages": shorter}).json()["input_tokens"]
        < counted
    )


def test_tool_use_in_every_choice_mode(client: TestClient) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
    }
    tools = [{"name": "weather", "description": "the weather", "input_schema": schema}]
    for choice in ({"type": "any"}, {"type": "tool", "name": "weather"}):
        reply = client.post(
            "/v1/messages", json={**MESSAGE, "max_tokens": 200, "tools": tools, "tool_choice": choice}
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["stop_reason"] == "tool_use", body
        uses = [b for b in body["content"] if b["type"] == "tool_use"]
        assert uses and all(
            u["name"] == "weather" and isinstance(u["input"]["city"], str) and u["id"] for u in uses
        )
    one = {
        **MESSAGE,
        "max_tokens": 200,
        "tools": tools,
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }
    assert (
        len([b for b in client.post("/v1/messages", json=one).json()["content"] if b["type"] == "tool_use"])
        == 1
    )
    auto = client.post("/v1/messages", json={**MESSAGE, "max_tokens": 50, "tools": tools})
    assert auto.status_code == 200 and auto.json()["stop_reason"] in {"end_turn", "max_tokens", "tool_use"}
    none = client.post("/v1/messages", json={**MESSAGE, "tools": tools, "tool_choice": {"type": "none"}})
    assert none.status_code == 200, none.text
    assert none.json()["stop_reason"] in {"end_turn", "max_tokens"}
    assert [block["type"] for block in none.json()["content"]] == ["text"]
    assert "<tool_call>" not in none.json()["content"][0]["text"]
    unknown = {**MESSAGE, "tools": tools, "tool_choice": {"type": "tool", "name": "nope"}}
    assert "nope" in assert_error(client.post("/v1/messages", json=unknown), 400, "invalid_request_error")
    bad_schema = [{"name": "w", "input_schema": {"type": "object", "patternProperties": {"a": {}}}}]
    bad = {**MESSAGE, "tools": bad_schema, "tool_choice": {"type": "any"}}
    assert "patternProperties" in assert_error(
        client.post("/v1/messages", json=bad), 400, "invalid_request_error"
    )
    # Tools are part of the prompt that is counted.
    with_tools = client.post("/v1/messages/count_tokens", json={**MESSAGE, "tools": tools}).json()
    assert (
        with_tools["input_tokens"]
        > client.post("/v1/messages/count_tokens", json=MESSAGE).json()["input_tokens"]
    )
    server_tool = {**MESSAGE, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    assert "custom tools" in assert_error(
        client.post("/v1/messages", json=server_tool), 400, "invalid_request_error"
    )


def test_images_reach_the_gateway_which_refuses_them_for_a_text_model(client: TestClient) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    sources = [
        {"type": "base64", "media_type": "image/png", "data": png},
        {"type": "url", "url": "https://example.com/cat.png"},
    ]
    for source in sources:
        content = [{"type": "image", "source": source}, {"type": "text", "text": "what is this?"}]
        body = {**MESSAGE, "messages": [{"role": "user", "content": content}]}
        assert "images" in assert_error(client.post("/v1/messages", json=body), 400, "invalid_request_error")
    bad = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}]
    body = {**MESSAGE, "messages": [{"role": "user", "content": bad}]}
    assert "base64" in assert_error(client.post("/v1/messages", json=body), 400, "invalid_request_error")


def test_sampling_fields_and_metadata_are_accepted(client: TestClient) -> None:
    body = {**MESSAGE, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "metadata": {"user_id": "u-123"}}
    assert client.post("/v1/messages", json=body).status_code == 200
    assert client.post("/v1/messages", json={**MESSAGE, "thinking": {"type": "disabled"}}).status_code == 200


def test_invalid_fields_are_400_naming_them(client: TestClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"temperature": 1.5}, "temperature"),
        ({"top_p": 2}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop_sequences": [""]}, "stop_sequences"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages"),
        ({"metadata": {"user_id": "u" * 300}}, "metadata"),
        ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "'document'"),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]},
            "tool_result",
        ),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "prefill"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
    ]
    for extra, named in cases:
        message = assert_error(
            client.post("/v1/messages", json={**MESSAGE, **extra}), 400, "invalid_request_error"
        )
        assert named in message, (extra, message)


def test_structured_output_follows_the_schema(client: TestClient) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 9}},
        "required": ["n"],
    }
    fmt = {"format": {"type": "json_schema", "schema": schema}}
    reply = client.post("/v1/messages", json={**MESSAGE, "max_tokens": 50, "output_config": fmt})
    assert reply.status_code == 200, reply.text
    value = json.loads(reply.json()["content"][0]["text"])
    assert 3 <= value["n"] <= 9
    refused = {"format": {"type": "json_schema", "schema": {"type": "array", "uniqueItems": True}}}
    message = assert_error(
        client.post("/v1/messages", json={**MESSAGE, "output_config": refused}), 400, "invalid_request_error"
    )
    assert "uniqueItems" in message


def test_a_call_cut_short_by_max_tokens_is_left_out_not_a_500(client: TestClient) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [{"name": "weather", "input_schema": schema}]
    body = {**MESSAGE, "max_tokens": 8, "tools": tools, "tool_choice": {"type": "any"}}
    reply = client.post("/v1/messages", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["stop_reason"] == "max_tokens"
    assert [b["type"] for b in reply.json()["content"]] == ["text"]  # no tool_use with a guessed input
