"""The official ``openai`` SDK's Responses API against a live ``hearth serve`` on fake engines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.api.openai.responses.test_routes import EVENT_ORDER
from tests.helpers.live import LiveServer

ADMIN = "admin-secret-responses-sdk"
MODELS = json.dumps(
    [
        {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-"},
        {"id": "slow", "kind": "chat", "backend": "fake", "source": "-", "options": {"token_delay_s": 0.02}},
    ]
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("responses-sdk")
    env = {"HEARTH_MODELS": MODELS, "HEARTH_ADMIN_KEY": ADMIN, "HEARTH_RESPONSES_HEARTBEAT_S": "0.1"}
    with LiveServer(root / "data", env=env) as live:
        yield live


def sdk(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return sdk(server, server.create_key(ADMIN, "sdk"))


def wait(client: openai.OpenAI, rid: str, statuses: set[str]) -> Any:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = client.responses.retrieve(rid)
        if response.status in statuses:
            return response
        time.sleep(0.05)
    raise AssertionError(f"{rid} stayed {response.status}")


def test_create_and_retrieve(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="fake-chat",
        input="hello there",
        instructions="be brief",
        max_output_tokens=5,
        metadata={"a": "b"},
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text.split()) == 5
    assert response.usage is not None and response.usage.output_tokens == 5
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.metadata == {"a": "b"} and response.instructions == "be brief"
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text and again.usage == response.usage


def test_stream_events_and_helper(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="fake-chat", input="hi", max_output_tokens=3, stream=True))
    assert [e.type for e in events] == EVENT_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    whole = client.responses.create(model="fake-chat", input="go on", max_output_tokens=20)
    stop = whole.output_text.split()[6]
    with client.responses.stream(
        model="fake-chat", input="go on", max_output_tokens=20, extra_body={"stop": [stop]}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(deltas)
    assert final.output_text.split() == whole.output_text.split()[:6]
    assert client.responses.retrieve(final.id).output_text == final.output_text


async def test_async_client_streams(server: LiveServer) -> None:
    key = server.create_key(ADMIN, "async")
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    stream = await client.responses.create(model="fake-chat", input="hi", max_output_tokens=3, stream=True)
    assert [e.type async for e in stream] == EVENT_ORDER
    await client.close()


def test_three_turns_through_previous_response_id(client: openai.OpenAI) -> None:
    turns = ["What is a fox?", "Is it quick?", "And the dog?"]
    previous: str | None = None
    answers: list[str] = []
    for text in turns:
        response = client.responses.create(
            model="fake-chat", input=text, previous_response_id=previous, max_output_tokens=4
        )
        assert response.previous_response_id == previous
        previous = response.id
        answers.append(response.output_text)
    history: list[Any] = []
    for text, answer in zip(turns, answers, strict=True):
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    chat = client.chat.completions.create(model="fake-chat", messages=history[:-1], max_tokens=4)
    assert chat.choices[0].message.content == answers[-1]  # the same prompt as the whole chain resent
    assert response.usage is not None and chat.usage is not None
    assert response.usage.input_tokens == chat.usage.prompt_tokens


def test_input_items_paginate(client: openai.OpenAI) -> None:
    items: Any = [{"role": "user", "content": f"line {i}"} for i in range(5)]
    response = client.responses.create(model="fake-chat", input=items, max_output_tokens=2)
    page = client.responses.input_items.list(response.id, limit=2)
    assert len(page.data) == 2 and page.has_more and page.has_next_page()
    every = list(client.responses.input_items.list(response.id, limit=2))  # the SDK follows `after`
    assert [i.content[0].text for i in every] == [f"line {i}" for i in (4, 3, 2, 1, 0)]  # type: ignore[union-attr]
    ascending = client.responses.input_items.list(response.id, order="asc")
    assert [i.id for i in ascending] == [i.id for i in reversed(every)]


def test_delete(client: openai.OpenAI) -> None:
    response = client.responses.create(model="fake-chat", input="x", max_output_tokens=2)
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve(response.id)
    assert missing.value.code == "response_not_found"


def test_background_queued_then_completed(client: openai.OpenAI) -> None:
    response = client.responses.create(model="slow", input="later", background=True, max_output_tokens=15)
    assert response.status == "queued" and response.background and response.output_text == ""
    seen = wait(client, response.id, {"in_progress"})
    assert seen.status == "in_progress"
    done = wait(client, response.id, {"completed", "incomplete"})
    assert len(done.output_text.split()) == 15 and done.usage is not None and done.usage.output_tokens == 15


def test_cancel_a_running_background_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="slow", input="long", background=True, max_output_tokens=1000)
    wait(client, response.id, {"in_progress"})
    time.sleep(0.3)
    cancelled = client.responses.cancel(response.id)
    assert cancelled.status == "cancelled"
    words = len(cancelled.output_text.split())
    assert 0 < words < 1000
    time.sleep(0.3)
    assert len(client.responses.retrieve(response.id).output_text.split()) == words  # it stopped


def test_errors(client: openai.OpenAI, server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="fake-chat", input="x", previous_response_id="resp_nope")
    assert unknown.value.code == "response_not_found"
    mine = client.responses.create(model="fake-chat", input="x", max_output_tokens=2)
    other = sdk(server, server.create_key(ADMIN, "other"))
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="fake-chat", input="x", previous_response_id=mine.id)
    with pytest.raises(openai.BadRequestError) as tools:
        client.responses.create(
            model="fake-chat",
            input="x",
            tools=[
                {
                    "type": "function",
                    "name": "f",
                    "parameters": {"type": "object", "not": {}},
                    "strict": False,
                }
            ],
            tool_choice="required",
        )
    assert tools.value.param == "tools[0].parameters" and "'not'" in tools.value.message
    with pytest.raises(openai.BadRequestError) as fmt:
        client.responses.create(
            model="fake-chat",
            input="x",
            text={
                "format": {
                    "type": "json_schema",
                    "name": "x",
                    "schema": {"type": "array", "uniqueItems": True},
                }
            },
        )
    assert fmt.value.param == "text.format.schema" and "uniqueItems" in fmt.value.message
    with pytest.raises(openai.BadRequestError) as too_long:
        client.responses.create(model="fake-chat", input="x", max_output_tokens=100_000)
    assert too_long.value.code == "context_length_exceeded"
