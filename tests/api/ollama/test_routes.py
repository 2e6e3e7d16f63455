"""The Ollama generation routes on fake engines: NDJSON and JSON shapes, options, defaults, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.engines.base import GenerationEvent, SamplingParams
from hearth.engines.fake import FakeChatEngine
from tests.helpers.apps import fake_settings, wait_ready

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 4}}
FINAL_FIELDS = {
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
}


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_rfc3339(value: str) -> None:
    assert value.endswith("Z")
    assert datetime.fromisoformat(value).utcoffset() is not None


@pytest.fixture
def small(tmp_path: Path) -> Iterator[TestClient]:
    """A chat model with a 64-token context, to watch num_ctx and num_predict at work."""
    with TestClient(build_app(fake_settings(tmp_path, chat={"context_length": 64}))) as client:
        wait_ready(client)
        yield client


def spy_on_sampling(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[SamplingParams]:
    """The sampling every generation reaches the fake chat engine with."""
    engine = client.app.state.registry.get("fake-chat", FakeChatEngine)  # type: ignore[attr-defined]
    recorded: list[SamplingParams] = []
    original = engine.generate

    async def spy(prompt: list[int], params: SamplingParams) -> AsyncGenerator[GenerationEvent, None]:
        recorded.append(params)
        async for event in original(prompt, params):
            yield event

    monkeypatch.setattr(engine, "generate", spy)
    return recorded


@pytest.fixture
def seen(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[SamplingParams]:
    return spy_on_sampling(client, monkeypatch)


def test_chat_streams_ndjson_then_a_done_object(client: TestClient) -> None:
    reply = client.post("/api/chat", json={**CHAT, "model": "fake-chat:latest"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/x-ndjson"
    chunks = lines(reply.text)
    *parts, final = chunks
    assert len(parts) == 4
    for part in parts:
        assert set(part) == {"model", "created_at", "message", "done"}
        assert part["model"] == "fake-chat:latest" and part["done"] is False
        assert part["message"]["role"] == "assistant"
        assert_rfc3339(part["created_at"])
    text = "".join(p["message"]["content"] for p in parts)
    assert len(text.split()) == 4
    assert final["done"] is True and final["done_reason"] == "length"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert set(final) >= FINAL_FIELDS
    assert final["eval_count"] == 4 and final["prompt_eval_count"] > 0
    assert final["total_duration"] >= final["prompt_eval_duration"] > 0
    assert final["load_duration"] == 0 and final["eval_duration"] >= 0


def test_chat_without_stream_is_one_object(client: TestClient) -> None:
    reply = client.post("/api/chat", json={**CHAT, "stream": False})
    assert reply.headers["content-type"].startswith("application/json")
    data = reply.json()
    assert data["done"] is True and data["done_reason"] == "length"
    assert len(data["message"]["content"].split()) == 4
    assert data["model"] == "fake-chat" and set(data) >= FINAL_FIELDS
    assert data["eval_count"] == 4


def test_stop_option_ends_with_done_reason_stop(client: TestClient) -> None:
    body = {**CHAT, "stream": False, "options": {"num_predict": 12, "seed": 0}}
    full = client.post("/api/chat", json=body).json()["message"]["content"]
    stop_word = full.split()[3]
    stopped = client.post("/api/chat", json={**body, "options": {**body["options"], "stop": [stop_word]}})
    data = stopped.json()
    assert data["done_reason"] == "stop"
    assert stop_word not in data["message"]["content"]
    assert full.startswith(data["message"]["content"])


def test_ollama_defaults_fill_what_the_caller_leaves_unset(
    client: TestClient, seen: list[SamplingParams]
) -> None:
    client.post("/api/chat", json={**CHAT, "stream": False})
    params = seen[-1]
    assert (params.temperature, params.top_k, params.top_p, params.repeat_penalty) == (0.8, 40, 0.9, 1.1)
    assert params.min_p == 0.0 and params.seed is None and params.max_tokens == 4
    options = {
        "num_predict": 3,
        "temperature": 0.2,
        "top_k": 5,
        "top_p": 0.5,
        "min_p": 0.05,
        "seed": 42,
        "stop": ["zzz"],
        "repeat_penalty": 1.3,
        "presence_penalty": 0.4,
        "frequency_penalty": 0.6,
        "mirostat": 2,  # known to Ollama, not to Hearth: accepted and ignored, as unknown ones are
        "no_such_option": True,
    }
    assert client.post("/api/chat", json={**CHAT, "stream": False, "options": options}).status_code == 200
    params = seen[-1]
    assert (params.max_tokens, params.temperature, params.top_k, params.top_p, params.min_p) == (
        3,
        0.2,
        5,
        0.5,
        0.05,
    )
    assert (params.seed, params.repeat_penalty, params.presence_penalty, params.frequency_penalty) == (
        42,
        1.3,
        0.4,
        0.6,
    )
    assert "zzz" in params.stop and "\nuser:" in params.stop  # the caller's stop and the template's


def test_the_models_own_defaults_come_before_ollamas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chat = {"sampling": {"temperature": 0.3, "top_k": 7}, "system_prompt": "You are terse."}
    with TestClient(build_app(fake_settings(tmp_path, chat=chat))) as client:
        wait_ready(client)
        params = spy_on_sampling(client, monkeypatch)
        plain = client.post("/api/chat", json={**CHAT, "stream": False}).json()
        assert (params[-1].temperature, params[-1].top_k, params[-1].top_p) == (0.3, 7, 0.9)
        client.post("/api/chat", json={**CHAT, "stream": False, "options": {"temperature": 1.5}})
        assert params[-1].temperature == 1.5  # the caller's value beats both
        shown = client.post("/api/show", json={"model": "fake-chat"}).json()
        assert "temperature                    0.3" in shown["parameters"]
        assert "top_k                          7" in shown["parameters"]
        assert shown["system"] == "You are terse." and 'SYSTEM """You are terse."""' in shown["modelfile"]
        # The configured system prompt joins a conversation that has none: its 4 tokens against "x"'s 2.
        with_own = {
            **CHAT,
            "stream": False,
            "messages": [{"role": "system", "content": "x"}, *CHAT["messages"]],
        }
        assert (
            plain["prompt_eval_count"]
            == client.post("/api/chat", json=with_own).json()["prompt_eval_count"] + 2
        )


@pytest.mark.parametrize("num_predict", [-1, -2])
def test_num_predict_unlimited_and_fill_context_run_to_the_end_of_the_context(
    small: TestClient, num_predict: int
) -> None:
    body = {**CHAT, "stream": False, "options": {"num_predict": num_predict}}
    data = small.post("/api/chat", json=body).json()
    assert data["done_reason"] == "length"
    assert data["prompt_eval_count"] + data["eval_count"] == 64


def test_num_ctx_narrows_the_context_but_never_grows_it(small: TestClient) -> None:
    body: dict[str, Any] = {**CHAT, "stream": False, "options": {"num_ctx": 16}}
    narrow = small.post("/api/chat", json=body).json()
    assert narrow["prompt_eval_count"] + narrow["eval_count"] == 16
    wide = small.post("/api/chat", json={**body, "options": {"num_ctx": 100_000}}).json()
    assert wide["prompt_eval_count"] + wide["eval_count"] == 64  # the model's own 64
    too_small = small.post(
        "/api/generate", json={"model": "fake-chat", "prompt": "a b c", "options": {"num_ctx": 3}}
    )
    assert too_small.status_code == 400
    assert "num_ctx" in too_small.json()["error"]


def test_generate_streams_response_fields(client: TestClient) -> None:
    reply = client.post(
        "/api/generate", json={"model": "fake-chat", "prompt": "once", "options": {"num_predict": 3}}
    )
    *parts, final = lines(reply.text)
    assert [set(p) for p in parts] == [{"model", "created_at", "response", "done"}] * 3
    assert final["response"] == "" and final["done"] is True and final["done_reason"] == "length"
    assert set(final) >= FINAL_FIELDS and final["eval_count"] == 3


def test_generate_templates_the_prompt_unless_raw(client: TestClient) -> None:
    def prompt_tokens(**extra: Any) -> int:
        body = {
            "model": "fake-chat",
            "prompt": "a b c",
            "stream": False,
            "options": {"num_predict": 1},
            **extra,
        }
        reply = client.post("/api/generate", json=body)
        assert reply.status_code == 200, reply.text
        count: int = reply.json()["prompt_eval_count"]
        return count

    raw = prompt_tokens(raw=True)
    assert raw == 4  # the fake tokenizer: BOS plus one token per word, no template
    templated = prompt_tokens()
    assert templated > raw  # "user: a b c\nassistant:"
    assert prompt_tokens(system="be very brief") == templated + 4  # a system turn before it


def test_generate_raw_refuses_system_template_and_context(client: TestClient) -> None:
    for extra in ({"system": "s"}, {"template": "{{ .Prompt }}"}, {"context": [1, 2]}):
        reply = client.post("/api/generate", json={"model": "fake-chat", "prompt": "x", "raw": True, **extra})
        assert reply.status_code == 400
        assert reply.json() == {"error": "raw mode does not support template, system, or context"}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"suffix": "end"}, "does not support insert"),
        ({"template": "{{ .Prompt }}"}, "template"),
        ({"context": [1, 2, 3]}, "context"),
        ({"think": True}, "does not support thinking"),
        ({"logprobs": True}, "logprobs"),
    ],
)
def test_generate_refuses_what_it_cannot_honour(
    client: TestClient, extra: dict[str, Any], needle: str
) -> None:
    reply = client.post("/api/generate", json={"model": "fake-chat", "prompt": "x", **extra})
    assert reply.status_code == 400
    assert needle in reply.json()["error"]


def test_chat_format_tools_and_images_reach_the_gateway(client: TestClient) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 3}},
        "required": ["a"],
    }
    for fmt in ("json", schema):
        reply = client.post(
            "/api/chat", json={**CHAT, "format": fmt, "stream": False, "options": {"num_predict": 40}}
        )
        assert reply.status_code == 200, reply.text
        value = json.loads(reply.json()["message"]["content"])
        assert isinstance(value, dict) and (fmt == "json" or 1 <= value["a"] <= 3)
    generated = client.post(
        "/api/generate", json={"model": "fake-chat", "prompt": "x", "format": "json", "stream": False}
    )
    assert generated.status_code == 200 and isinstance(json.loads(generated.json()["response"]), dict)
    refused = client.post("/api/chat", json={**CHAT, "format": {"type": "object", "not": {}}})
    assert refused.status_code == 400 and "'not'" in refused.json()["error"]
    params = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 10}},
        "required": ["city"],
    }
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": params}}
    reply = client.post(
        "/api/chat", json={**CHAT, "tools": [tool], "stream": False, "options": {"num_predict": 200}}
    )
    assert reply.status_code == 200, reply.text  # auto: the fake answers in text or calls
    for call in reply.json()["message"].get("tool_calls") or []:
        assert call["function"]["name"] == "get_weather" and isinstance(
            call["function"]["arguments"]["city"], str
        )
    image = base64.b64encode(b"\x89PNG not really").decode()
    with_image = [{"role": "user", "content": "what is this?", "images": [image]}]
    reply = client.post("/api/chat", json={**CHAT, "messages": with_image})
    assert reply.status_code == 400 and "does not accept images" in reply.json()["error"]
    reply = client.post("/api/generate", json={"model": "fake-chat", "prompt": "what?", "images": [image]})
    assert reply.status_code == 400 and "does not accept images" in reply.json()["error"]
    bad = [{"role": "user", "content": "x", "images": ["not base64!"]}]
    reply = client.post("/api/chat", json={**CHAT, "messages": bad})
    assert reply.status_code == 400 and reply.json() == {"error": "the image is not valid base64"}


def test_chat_history_with_tool_turns_is_accepted(client: TestClient) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "user", "content": "thanks"},
    ]
    reply = client.post("/api/chat", json={**CHAT, "messages": messages, "stream": False})
    assert reply.status_code == 200, reply.text


def test_empty_requests_only_load_the_model(client: TestClient) -> None:
    chat = client.post("/api/chat", json={"model": "fake-chat", "keep_alive": "5m"}).json()
    assert chat["done"] is True and chat["done_reason"] == "load"
    assert chat["message"] == {"role": "assistant", "content": ""}
    generate = client.post("/api/generate", json={"model": "fake-chat:latest", "keep_alive": -1}).json()
    assert (generate["response"], generate["done_reason"], generate["model"]) == (
        "",
        "load",
        "fake-chat:latest",
    )
    missing = client.post("/api/generate", json={"model": "nope"}).json()
    assert missing == {
        "error": "model 'nope' not found; the models you may use: fake-chat (fc), fake-embed, fake-vision"
    }
    wrong = client.post("/api/chat", json={"model": "fake-embed"})
    assert wrong.status_code == 400 and wrong.json() == {"error": '"fake-embed" does not support chat'}


def test_mid_stream_failure_ends_with_an_error_line(client: TestClient) -> None:
    body = {"model": "fake-chat", "prompt": "go FAIL_MIDSTREAM", "options": {"num_predict": 9}}
    with client.stream("POST", "/api/generate", json=body) as reply:
        assert reply.status_code == 200
        chunks = lines(reply.read().decode())
    assert [c["response"] for c in chunks[:-1]] and all(not c["done"] for c in chunks[:-1])
    assert chunks[-1] == {"error": "the fake engine failed mid-stream, as asked"}


def test_over_long_prompt_is_a_400(client: TestClient) -> None:
    long_prompt = " ".join(["word"] * 3000)  # the fake chat model's context is 2048 tokens
    for path, body in (
        ("/api/generate", {"model": "fake-chat", "prompt": long_prompt}),
        ("/api/chat", {"model": "fake-chat", "messages": [{"role": "user", "content": long_prompt}]}),
    ):
        reply = client.post(path, json=body)
        assert reply.status_code == 400
        assert set(reply.json()) == {"error"} and "context" in reply.json()["error"]
