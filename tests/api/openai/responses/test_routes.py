"""``/v1/responses`` on fake engines: shapes, chains, items, streams, background work, refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.config import ModelSpec
from hearth.engines.base import ChatEngine
from tests.helpers.apps import fake_models, fake_settings, wait_ready

SLOW = {"id": "slow", "kind": "chat", "backend": "fake", "source": "-", "options": {"token_delay_s": 0.02}}

EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.incomplete",
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    models = [*fake_models(context_length=256), ModelSpec.model_validate(SLOW)]
    settings = fake_settings(tmp_path, models=models, responses_heartbeat_s=0.05)
    with TestClient(build_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    reply = client.post("/v1/responses", json={"model": "fake-chat", "max_output_tokens": 4, **body})
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def text_of(response: dict[str, Any]) -> str:
    return "".join(
        part["text"] for item in response["output"] if item["type"] == "message" for part in item["content"]
    )


def sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def wait_status(client: TestClient, rid: str, statuses: set[str], timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data: dict[str, Any] = client.get(f"/v1/responses/{rid}").json()
        if data["status"] in statuses:
            return data
        time.sleep(0.02)
    raise AssertionError(f"{rid} never reached {statuses}: {data['status']}")


def test_create_shape_and_echo(client: TestClient) -> None:
    data = create(
        client, input="hello there", instructions="be brief", temperature=0.5, metadata={"k": "v"}, user="u1"
    )
    assert data["object"] == "response" and data["id"].startswith("resp_")
    assert (data["status"], data["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert (data["model"], data["instructions"], data["temperature"]) == ("fake-chat", "be brief", 0.5)
    assert (data["metadata"], data["user"], data["store"], data["background"]) == (
        {"k": "v"},
        "u1",
        True,
        False,
    )
    assert data["text"] == {"format": {"type": "text"}} and data["truncation"] == "disabled"
    [item] = data["output"]
    assert item["type"] == "message" and item["role"] == "assistant" and item["status"] == "incomplete"
    assert len(text_of(data).split()) == 4
    usage = data["usage"]
    assert usage["output_tokens"] == 4 and usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + 4
    assert usage["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    assert client.get(f"/v1/responses/{data['id']}").json() == data


def test_completed_when_a_stop_ends_it(client: TestClient) -> None:
    first = text_of(create(client, input="hi")).split()
    done = create(client, input="hi", stop=[first[2]])
    assert done["status"] == "completed" and done["incomplete_details"] is None
    assert text_of(done).split() == first[:2] and done["completed_at"] >= done["created_at"]


def test_a_chain_prompts_like_chat_with_the_history_resent(client: TestClient) -> None:
    one = create(client, input="what is up", instructions="be kind")
    two = create(client, input="tell me more", previous_response_id=one["id"], instructions="be kind")
    three = create(client, input="and then", previous_response_id=two["id"], instructions="be kind")
    history = [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "what is up"},
        {"role": "assistant", "content": text_of(one)},
        {"role": "user", "content": "tell me more"},
        {"role": "assistant", "content": text_of(two)},
        {"role": "user", "content": "and then"},
    ]
    chat = client.post(
        "/v1/chat/completions", json={"model": "fake-chat", "messages": history, "max_tokens": 4}
    )
    assert three["usage"]["input_tokens"] == chat.json()["usage"]["prompt_tokens"]
    assert text_of(three) == chat.json()["choices"][0]["message"]["content"]
    assert three["previous_response_id"] == two["id"]
    # Its own input only: the earlier turns are the earlier responses' items.
    items = client.get(f"/v1/responses/{three['id']}/input_items").json()
    assert [i["content"][0]["text"] for i in items["data"]] == ["and then"]


def test_instructions_are_not_carried_over(client: TestClient) -> None:
    one = create(client, input="a b", instructions="a long system prompt of many words")
    two = create(client, input="c", previous_response_id=one["id"])
    again = create(client, input="c", previous_response_id=one["id"], instructions="x")
    # The first turn's long instructions are gone from both; "system: x" is two fake tokens.
    assert again["usage"]["input_tokens"] == two["usage"]["input_tokens"] + 2


def test_input_items_list_and_pages(client: TestClient) -> None:
    items = [{"role": "user", "content": f"line {i}"} for i in range(5)]
    data = create(client, input=items)
    url = f"/v1/responses/{data['id']}/input_items"
    page = client.get(url, params={"limit": 2}).json()
    assert [i["content"][0]["text"] for i in page["data"]] == ["line 4", "line 3"]
    assert page["has_more"] and page["first_id"] == page["data"][0]["id"] and page["object"] == "list"
    rest = client.get(url, params={"limit": 10, "after": page["last_id"]}).json()
    assert [i["content"][0]["text"] for i in rest["data"]] == ["line 2", "line 1", "line 0"]
    assert not rest["has_more"]
    asc = client.get(url, params={"order": "asc"}).json()
    assert asc["data"][0] == {
        "id": asc["data"][0]["id"],
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": "line 0"}],
    }
    assert client.get(url, params={"limit": 101}).status_code == 400


def test_function_call_items_are_listed_and_accepted(client: TestClient) -> None:
    items = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is sunny."}],
        },
        {"role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
    ]
    data = create(client, input=items)
    listed = client.get(f"/v1/responses/{data['id']}/input_items", params={"order": "asc"}).json()["data"]
    assert [i["type"] for i in listed] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    assert listed[1]["id"].startswith("fc_") and listed[1]["arguments"] == '{"city": "Oslo"}'
    assert listed[2]["output"] == "sunny" and listed[2]["call_id"] == "call_1"
    assert listed[3]["role"] == "assistant" and listed[3]["content"][0]["type"] == "output_text"
    assert listed[4]["role"] == "developer"


def test_retrieve_delete_and_404s(client: TestClient) -> None:
    data = create(client, input="x")
    gone = client.delete(f"/v1/responses/{data['id']}")
    assert gone.json() == {"id": data["id"], "object": "response.deleted", "deleted": True}
    for method, path in [
        ("GET", f"/v1/responses/{data['id']}"),
        ("GET", f"/v1/responses/{data['id']}/input_items"),
        ("DELETE", f"/v1/responses/{data['id']}"),
        ("POST", f"/v1/responses/{data['id']}/cancel"),
    ]:
        reply = client.request(method, path)
        assert reply.status_code == 404, (method, path)
        assert reply.json()["error"]["code"] == "response_not_found"
        assert reply.json()["error"]["type"] == "not_found_error"
    unknown = client.post(
        "/v1/responses", json={"model": "fake-chat", "input": "x", "previous_response_id": "resp_x"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "previous_response_id"


def test_store_false_is_not_kept(client: TestClient) -> None:
    data = create(client, input="x", store=False)
    assert data["store"] is False
    assert client.get(f"/v1/responses/{data['id']}").status_code == 404
    bad = client.post(
        "/v1/responses", json={"model": "fake-chat", "input": "x", "store": False, "background": True}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "store"


def test_truncation_disabled_refuses_an_overflowing_chain_and_auto_drops_turns(client: TestClient) -> None:
    words = " ".join(["word"] * 60)
    previous = None
    for _ in range(3):  # each turn adds ~70 tokens; the context is 256
        turn = create(client, input=words, previous_response_id=previous, max_output_tokens=8)
        previous = turn["id"]
    refused = client.post(
        "/v1/responses",
        json={"model": "fake-chat", "input": words, "previous_response_id": previous, "max_output_tokens": 8},
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input")
    assert "truncation" in error["message"] and "previous_response_id" in error["message"]
    auto = create(client, input=words, previous_response_id=previous, max_output_tokens=8, truncation="auto")
    assert auto["truncation"] == "auto" and auto["usage"]["input_tokens"] <= 256 - 8


def test_known_but_unsupported_fields_are_refused(client: TestClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "x",
                        "schema": {"type": "array", "uniqueItems": True},
                    }
                }
            },
            "text.format.schema",
        ),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        (
            {
                "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "not": {}}}],
                "tool_choice": "required",
            },
            "tools[0].parameters",
        ),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"background": True, "stream": True}, "stream"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
    ]
    for extra, param in cases:
        reply = client.post("/v1/responses", json={"model": "fake-chat", "input": "x", **extra})
        assert reply.status_code == 400, (extra, reply.text)
        assert reply.json()["error"]["param"] == param, extra
    # tool_choice "none" leaves the tools unused, which is honoured
    assert create(client, input="x", tools=[{"type": "function", "name": "f"}], tool_choice="none")["tools"]


def test_images_are_refused_by_text_models(client: TestClient) -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [{"type": "input_text", "text": "what is it"}, {"type": "input_image", "image_url": png}]
    reply = client.post(
        "/v1/responses", json={"model": "fake-chat", "input": [{"role": "user", "content": content}]}
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "unsupported_content"


def test_stream_events_in_order(client: TestClient) -> None:
    with client.stream(
        "POST",
        "/v1/responses",
        json={"model": "fake-chat", "input": "hi", "max_output_tokens": 3, "stream": True},
    ) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse(reply.read().decode())
    assert [name for name, _ in events] == EVENT_ORDER
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    deltas = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    assert text_of(final) == deltas == events[7][1]["text"]
    item_id = events[2][1]["item"]["id"]
    assert all(data.get("item_id", item_id) == item_id for _, data in events[3:10])
    assert client.get(f"/v1/responses/{final['id']}").json() == final


def test_stream_failure_sends_error_then_failed_and_stores_it(client: TestClient) -> None:
    body = {"model": "fake-chat", "input": "FAIL_MIDSTREAM", "max_output_tokens": 9, "stream": True}
    with client.stream("POST", "/v1/responses", json=body) as reply:
        events = sse(reply.read().decode())
    names = [name for name, _ in events]
    assert names[-2:] == ["error", "response.failed"] and "response.output_text.delta" in names
    assert events[-2][1]["code"] == "engine_error"
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    stored = client.get(f"/v1/responses/{failed['id']}").json()
    assert stored["status"] == "failed" and text_of(stored) == text_of(failed) != ""
    assert stored["usage"]["output_tokens"] == 2


def test_background_is_queued_then_completed(client: TestClient) -> None:
    data = create(client, input="later", background=True, model="slow", max_output_tokens=10)
    assert (data["status"], data["background"], data["output"], data.get("usage")) == (
        "queued",
        True,
        [],
        None,
    )
    done = wait_status(client, data["id"], {"completed", "incomplete"})
    assert len(text_of(done).split()) == 10 and done["usage"]["output_tokens"] == 10


def test_cancel_stops_a_running_background_response(client: TestClient) -> None:
    engine = client.app.state.registry.get("slow", ChatEngine)  # type: ignore[attr-defined]
    data = create(client, input="long", background=True, model="slow", max_output_tokens=1000)
    wait_status(client, data["id"], {"in_progress"})
    time.sleep(0.2)
    cancelled = client.post(f"/v1/responses/{data['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    words = len(text_of(cancelled).split())
    assert 0 < words < 1000 and cancelled["usage"]["output_tokens"] == words
    assert engine.cancelled == 1 and engine.running == 0
    time.sleep(0.2)
    assert client.get(f"/v1/responses/{data['id']}").json() == cancelled  # it stays cancelled
    assert client.post(f"/v1/responses/{data['id']}/cancel").json() == cancelled  # idempotent


def test_cancel_refuses_foreground_responses(client: TestClient) -> None:
    data = create(client, input="x")
    reply = client.post(f"/v1/responses/{data['id']}/cancel")
    assert reply.status_code == 400 and "background" in reply.json()["error"]["message"]


def test_a_running_response_cannot_be_continued_yet(client: TestClient) -> None:
    data = create(client, input="long", background=True, model="slow", max_output_tokens=1000)
    reply = client.post(
        "/v1/responses", json={"model": "fake-chat", "input": "x", "previous_response_id": data["id"]}
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "previous_response_id"
    client.post(f"/v1/responses/{data['id']}/cancel")
    assert create(client, input="x", previous_response_id=data["id"])["status"] == "incomplete"


def test_deleting_a_running_response_stops_it(client: TestClient) -> None:
    engine = client.app.state.registry.get("slow", ChatEngine)  # type: ignore[attr-defined]
    data = create(client, input="long", background=True, model="slow", max_output_tokens=1000)
    wait_status(client, data["id"], {"in_progress"})
    assert client.delete(f"/v1/responses/{data['id']}").status_code == 200
    deadline = time.monotonic() + 5
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.running == 0 and engine.cancelled == 1
