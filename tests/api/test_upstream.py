"""Upstream models through every family: a request in any family's shape goes through the neutral
core to a server in OpenAI's or Anthropic's dialect, and comes back in the caller's shape, with the
upstream's own token counts in the answer and the usage row."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers import upstream as up
from tests.helpers.apps import fake_models, fake_settings, wait_ready
from tests.helpers.keys import ADMIN, admin_headers, bearer
from tests.helpers.ledger import flush_ledger, rows
from tests.helpers.upstream import FakeUpstream
from tests.helpers.wire import sse_events

TEXT = "".join(up.WORDS)
MESSAGES = [{"role": "user", "content": "Say hello."}]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def upstream_models(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [
        {"id": "up", "kind": "chat", "backend": "openai", "source": fake.url, "upstream_model": "up-chat",
         "health_check_s": 0, "fallbacks": ["fake-chat"]},
        {"id": "up-embed", "kind": "embedding", "backend": "openai", "source": fake.url, "health_check_s": 0},
        {"id": "claude", "kind": "chat", "backend": "anthropic", "source": fake.root, "upstream_model": "up-chat",
         "health_check_s": 0},
    ]  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def client(tmp_path: Path, fake: FakeUpstream) -> Iterator[TestClient]:
    models = [*[m.model_dump() for m in fake_models()], *upstream_models(fake)]
    settings = fake_settings(tmp_path, models=models, no_auth=False, admin_key=ADMIN)
    with TestClient(build_app(settings)) as test_client:
        wait_ready(test_client)
        reply = test_client.post("/admin/keys", json={"name": "upstream"}, headers=admin_headers())
        test_client.headers.update(bearer(reply.json()["secret"]))
        yield test_client


def test_openai_chat_whole_carries_the_upstreams_counts(client: TestClient, fake: FakeUpstream) -> None:
    reply = client.post("/v1/chat/completions", json={"model": "up", "messages": MESSAGES, "max_tokens": 8})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "up" and body["choices"][0]["message"]["content"] == TEXT
    assert body["choices"][0]["finish_reason"] == "stop" and reply.headers["x-hearth-variant"] == "up"
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (up.PROMPT_TOKENS, up.COMPLETION_TOKENS)
    assert usage["prompt_tokens_details"]["cached_tokens"] == up.CACHED_TOKENS
    (sent,) = fake.bodies("/v1/chat/completions")
    # Unstreamed to the upstream too: one body to parse instead of a chunk per token.
    assert sent["model"] == "up-chat" and sent["stream"] is False and "stream_options" not in sent
    assert sent["max_tokens"] == 8 and sent["messages"] == MESSAGES
    (row,) = [r for r in rows(client) if r["route"] == "POST /v1/chat/completions"]
    assert (row["model"], row["variant"], row["prompt_tokens"], row["completion_tokens"]) == (
        "up",
        "up",
        11,
        4,
    )


def test_openai_chat_streamed(client: TestClient, fake: FakeUpstream) -> None:
    body = {"model": "up", "messages": MESSAGES, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        events = sse_events(reply.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == TEXT and not any(c.get("usage") for c in chunks)  # the caller asked for no usage
    # Hearth asks for the usage chunk whatever the caller asked: the ledger has the real count.
    (sent,) = fake.bodies("/v1/chat/completions")
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    (row,) = [r for r in rows(client) if r["route"] == "POST /v1/chat/completions"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (up.PROMPT_TOKENS, up.COMPLETION_TOKENS)


def test_tool_calls_come_back_structured(client: TestClient, fake: FakeUpstream) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    body = {"model": "up", "messages": MESSAGES, "tools": tools, "tool_choice": "required"}
    reply = client.post("/v1/chat/completions", json=body).json()
    (call,) = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    sent = fake.bodies("/v1/chat/completions")[-1]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER and sent["tool_choice"] == "required"


def test_anthropic_caller_over_an_openai_upstream(client: TestClient) -> None:
    body = {"model": "up", "max_tokens": 16, "messages": MESSAGES, "system": "Be brief."}
    reply = client.post("/v1/messages", json=body)
    assert reply.status_code == 200, reply.text
    message = reply.json()
    assert message["content"] == [{"type": "text", "text": TEXT}] and message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == up.PROMPT_TOKENS - up.CACHED_TOKENS
    assert message["usage"]["cache_read_input_tokens"] == up.CACHED_TOKENS


def test_count_tokens_asks_the_upstream(client: TestClient, fake: FakeUpstream) -> None:
    body = {"model": "up", "messages": MESSAGES}
    assert client.post("/v1/messages/count_tokens", json=body).json() == {"input_tokens": 17}
    assert fake.bodies("/tokenize")[-1]["messages"] == MESSAGES
    anthropic = client.post("/v1/messages/count_tokens", json={**body, "model": "claude"}).json()
    assert anthropic == {"input_tokens": 9}


def test_ollama_chat_generate_and_embed(client: TestClient, fake: FakeUpstream) -> None:
    chat = client.post("/api/chat", json={"model": "up", "messages": MESSAGES, "stream": False}).json()
    assert chat["message"]["content"] == TEXT and chat["prompt_eval_count"] == up.PROMPT_TOKENS
    assert chat["eval_count"] == up.COMPLETION_TOKENS
    # Ollama's own defaults reach the upstream where the caller left sampling unset.
    assert fake.bodies("/v1/chat/completions")[-1]["temperature"] == 0.8
    generated = client.post("/api/generate", json={"model": "up", "prompt": "Hi", "stream": False}).json()
    assert generated["response"] == TEXT
    raw = client.post("/api/generate", json={"model": "up", "prompt": "Once", "raw": True, "stream": False})
    assert raw.json()["response"] == TEXT and fake.bodies("/v1/completions")[-1]["prompt"] == "Once"
    embedded = client.post("/api/embed", json={"model": "up-embed", "input": ["ab", "abcd"]}).json()
    assert embedded["embeddings"] == [[2.0, 1.0, 0.0, 0.0], [4.0, 1.0, 0.0, 1.0]]
    assert embedded["prompt_eval_count"] == 10


def test_openai_embeddings_and_completions(client: TestClient) -> None:
    embedded = client.post("/v1/embeddings", json={"model": "up-embed", "input": "hello"}).json()
    assert (
        embedded["data"][0]["embedding"] == [5.0, 1.0, 0.0, 0.0] and embedded["usage"]["prompt_tokens"] == 5
    )
    completion = client.post(
        "/v1/completions", json={"model": "up", "prompt": "Once", "max_tokens": 4}
    ).json()
    assert completion["choices"][0]["text"] == TEXT and completion["choices"][0]["finish_reason"] == "length"


def test_responses_api_chains_over_an_upstream(client: TestClient, fake: FakeUpstream) -> None:
    first = client.post("/v1/responses", json={"model": "up", "input": "Say hello."}).json()
    assert first["output"][0]["content"][0]["text"] == TEXT and first["usage"]["input_tokens"] == 11
    second = client.post(
        "/v1/responses", json={"model": "up", "input": "Again.", "previous_response_id": first["id"]}
    ).json()
    assert second["status"] == "completed"
    sent = fake.bodies("/v1/chat/completions")[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"] and sent[1]["content"] == TEXT


def test_oip_completion_over_an_upstream(client: TestClient) -> None:
    body = {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["Once"]}]}
    reply = client.post("/v2/models/up/infer", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [TEXT]


def test_an_anthropic_upstream_serves_every_family(client: TestClient, fake: FakeUpstream) -> None:
    chat = client.post("/v1/chat/completions", json={"model": "claude", "messages": MESSAGES}).json()
    assert chat["choices"][0]["message"]["content"] == TEXT
    assert chat["usage"] == {**chat["usage"], "prompt_tokens": 11, "completion_tokens": 4}
    sent = fake.bodies("/v1/messages")[-1]
    assert sent["max_tokens"] == 4096 and sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hello."}]}
    ]
    assert fake.requests[-1][2]["anthropic-version"] == "2023-06-01"
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    called = client.post(
        "/v1/chat/completions",
        json={"model": "claude", "messages": MESSAGES, "tools": tools, "tool_choice": "required"},
    ).json()
    assert called["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    ollama = client.post("/api/chat", json={"model": "claude", "messages": MESSAGES, "stream": False}).json()
    assert ollama["message"]["content"] == TEXT
    refused = client.post("/v1/completions", json={"model": "claude", "prompt": "Once"})
    assert refused.status_code == 400 and "Messages API" in refused.json()["error"]["message"]


def test_upstream_refusals_in_the_callers_shape(client: TestClient, fake: FakeUpstream) -> None:
    long = client.post(
        "/v1/chat/completions", json={"model": "up", "messages": MESSAGES, "max_tokens": 100_000}
    )
    assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded"
    anthropic = client.post("/v1/messages", json={"model": "up", "messages": MESSAGES, "max_tokens": 100_000})
    assert anthropic.status_code == 400 and anthropic.json()["error"]["type"] == "invalid_request_error"


def test_the_context_the_upstream_states_is_shown(client: TestClient) -> None:
    card = client.get("/v1/models/up").json()
    assert card["details"]["context_length"] == 4096 and card["details"]["backend"] == "openai"
    assert "tools" in card["capabilities"]


def test_a_model_that_fails_falls_back(client: TestClient, fake: FakeUpstream) -> None:
    fake.mode = "500"
    reply = client.post("/v1/chat/completions", json={"model": "up", "messages": MESSAGES, "max_tokens": 3})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-hearth-variant"] == "fake-chat" and reply.json()["model"] == "up"
    row = [r for r in rows(client) if r["route"] == "POST /v1/chat/completions"][-1]
    assert (row["model"], row["variant"], row["status_code"]) == ("up", "fake-chat", 200)


def test_a_callers_own_error_does_not_fall_back(client: TestClient, fake: FakeUpstream) -> None:
    long = client.post(
        "/v1/chat/completions", json={"model": "up", "messages": MESSAGES, "max_tokens": 100_000}
    )
    assert long.status_code == 400 and long.headers["x-hearth-variant"] == "up"  # not fake-chat


def test_fields_hearth_does_not_model_pass_through_to_an_upstream_of_the_same_dialect(
    client: TestClient, fake: FakeUpstream
) -> None:
    extra = {"chat_template_kwargs": {"enable_thinking": False}, "guided_choice": ["yes", "no"]}
    client.post("/v1/chat/completions", json={"model": "up", "messages": MESSAGES, **extra})
    sent = fake.bodies("/v1/chat/completions")[-1]
    assert {k: sent[k] for k in extra} == extra and sent["model"] == "up-chat"  # Hearth's fields win
    client.post("/v1/messages", json={"model": "claude", "max_tokens": 8, "messages": MESSAGES,
                                      "metadata": {"user_id": "u-1"}, "service_tier": "auto"})  # fmt: skip
    sent = fake.bodies("/v1/messages")[-1]
    assert sent["metadata"] == {"user_id": "u-1"} and sent["service_tier"] == "auto"
    # Across dialects they are not the other server's fields: they stay behind.
    client.post("/v1/chat/completions", json={"model": "claude", "messages": MESSAGES, **extra})
    assert "chat_template_kwargs" not in fake.bodies("/v1/messages")[-1]


def make_key(client: TestClient, name: str, **limits: Any) -> dict[str, str]:
    reply = client.post("/admin/keys", json={"name": name, **limits}, headers=admin_headers())
    assert reply.status_code == 201, reply.text
    return bearer(reply.json()["secret"])


def test_an_upstream_added_at_run_time_joins_a_canary_and_a_shadow(
    client: TestClient, fake: FakeUpstream
) -> None:
    spec = {"id": "up2", "kind": "chat", "backend": "openai", "source": fake.url, "upstream_model": "up-chat"}
    added = client.post("/admin/models", json=spec, headers=admin_headers())
    assert added.status_code == 201 and added.json()["state"] == "ready", added.text
    assert added.json()["endpoints"][0]["endpoint"] == fake.url
    canary = {
        "strategy": "canary",
        "variants": [{"model": "fake-chat", "weight": 50}, {"model": "up2", "weight": 50}],
    }
    assert client.put("/admin/routes/chat", json=canary, headers=admin_headers()).status_code == 200
    seen = {
        client.post(
            "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES, "max_tokens": 2}
        ).headers["x-hearth-variant"]
        for _ in range(24)
    }
    assert seen == {"fake-chat", "up2"}
    shadow = {"strategy": "shadow", "variants": [{"model": "fake-chat", "weight": 100}], "shadow": "up2"}
    assert client.put("/admin/routes/chat", json=shadow, headers=admin_headers()).status_code == 200
    before = len(fake.bodies("/v1/chat/completions"))
    reply = client.post("/v1/chat/completions", json={"model": "chat", "messages": MESSAGES, "max_tokens": 2})
    assert reply.headers["x-hearth-variant"] == "fake-chat"
    deadline = time.monotonic() + 10
    while len(fake.bodies("/v1/chat/completions")) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake.bodies("/v1/chat/completions")) == before + 1  # the shadow's copy went upstream


def test_scopes_limits_and_budgets_count_the_upstreams_tokens(client: TestClient) -> None:
    scoped = make_key(client, "only-up", models=["up"])
    assert (
        client.post(
            "/v1/chat/completions", json={"model": "up", "messages": MESSAGES}, headers=scoped
        ).status_code
        == 200
    )
    denied = client.post(
        "/v1/chat/completions", json={"model": "fake-chat", "messages": MESSAGES}, headers=scoped
    )
    assert denied.status_code == 403
    # tokens per minute: each answer uses the upstream's 11 + 4 = 15; a request reserves its estimate.
    tpm = make_key(client, "tpm", tpm=100)
    body = {"model": "up", "messages": MESSAGES, "max_tokens": 8}
    statuses = [client.post("/v1/chat/completions", json=body, headers=tpm).status_code for _ in range(8)]
    assert statuses[:6] == [200] * 6 and statuses[-1] == 429
    # A monthly budget counts the Messages and Responses traffic too.
    budget = make_key(client, "budget", monthly_tokens=40)
    assert (
        client.post(
            "/v1/messages", json={"model": "up", "max_tokens": 8, "messages": MESSAGES}, headers=budget
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/v1/responses", json={"model": "up", "input": "hi", "max_output_tokens": 8}, headers=budget
        ).status_code
        == 200
    )
    flush_ledger(client)  # the budget reads the ledger: on a busy machine its writer may lag
    over = client.post(
        "/v1/messages", json={"model": "up", "max_tokens": 30, "messages": MESSAGES}, headers=budget
    )
    assert over.status_code == 429 and over.json()["error"]["type"] == "rate_limit_error"
    flush_ledger(client)
    usage = client.get("/v1/usage", headers=budget).json()
    assert usage["budget"]["used_this_month"] == 30
