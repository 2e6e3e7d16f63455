"""Ollama's ways to load and unload a model, against what the real Ollama answers.

The expected bodies are the real server's (ollama/ollama, server/routes.go: ``GenerateHandler``
and ``ChatHandler``): an empty request loads the model and answers ``done_reason: "load"``; an
empty request with ``keep_alive: 0`` unloads it and answers ``done_reason: "unload"``. ``/api/ps``
lists what is loaded, longest-lived first, with ``expires_at`` when keep_alive will unload it; a
model kept "forever" (``keep_alive: -1``) expires at now plus Go's largest duration, which the
Ollama CLI shows as "Forever". Every answer also parses as the official client's type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ollama
import pytest

from tests.helpers.live import LiveServer

MODELS = json.dumps(
    [
        {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-", "aliases": ["fc"]},
        {"id": "short-chat", "kind": "chat", "backend": "fake", "source": "-", "keep_alive_s": 600},
        {"id": "fake-embed", "kind": "embedding", "backend": "fake", "source": "-"},
    ]
)
# What the real Ollama answers (created_at aside), from server/routes.go.
OLLAMA_UNLOAD_GENERATE = {"model": "fake-chat", "response": "", "done": True, "done_reason": "unload"}
OLLAMA_UNLOAD_CHAT = {
    "model": "fake-chat",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "unload",
}
OLLAMA_LOAD_GENERATE = {"model": "fake-chat", "response": "", "done": True, "done_reason": "load"}
GO_MAX_DURATION = timedelta(microseconds=(2**63 - 1) // 1000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("ollama-keep-alive")
    with LiveServer(root / "data", "--no-auth", env={"HEARTH_MODELS": MODELS}) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> ollama.Client:
    return ollama.Client(host=server.url)


def post(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(server.url + path, json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    created = answer.pop("created_at")
    assert datetime.fromisoformat(created.replace("Z", "+00:00")).tzinfo is not None
    return answer


def loaded(client: ollama.Client) -> dict[str, datetime]:
    return {m.model or "": m.expires_at for m in client.ps().models if m.expires_at is not None}


def test_generate_with_keep_alive_zero_unloads_and_an_empty_prompt_loads(
    server: LiveServer, client: ollama.Client
) -> None:
    assert post(server, "/api/generate", {"model": "fake-chat"}) == OLLAMA_LOAD_GENERATE
    assert "fake-chat:latest" in loaded(client)
    unloaded = post(server, "/api/generate", {"model": "fake-chat", "keep_alive": 0})
    assert unloaded == OLLAMA_UNLOAD_GENERATE
    assert "fake-chat:latest" not in loaded(client)
    assert post(server, "/api/generate", {"model": "fake-chat"}) == OLLAMA_LOAD_GENERATE
    assert "fake-chat:latest" in loaded(client)


def test_chat_with_no_messages_and_keep_alive_zero_unloads(server: LiveServer, client: ollama.Client) -> None:
    assert (
        post(server, "/api/chat", {"model": "fake-chat", "messages": [], "keep_alive": 0})
        == OLLAMA_UNLOAD_CHAT
    )
    assert "fake-chat:latest" not in loaded(client)
    # The next real request loads it again, and says how long that took.
    reply = client.chat(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 3}
    )
    assert reply.done and reply.message.content and (reply.load_duration or 0) > 0
    assert "fake-chat:latest" in loaded(client)


def test_the_official_client_idioms(client: ollama.Client) -> None:
    unloaded = client.generate(model="fake-chat", keep_alive=0)
    assert isinstance(unloaded, ollama.GenerateResponse) and unloaded.done_reason == "unload"
    assert "fake-chat:latest" not in loaded(client)
    again = client.generate(model="fake-chat")  # the documented way to preload
    assert again.done_reason == "load" and "fake-chat:latest" in loaded(client)
    chat = client.chat(model="fc", messages=[], keep_alive=0)  # an alias names the same model
    assert isinstance(chat, ollama.ChatResponse) and chat.done_reason == "unload"
    assert chat.message.role == "assistant" and "fake-chat:latest" not in loaded(client)
    assert client.chat(model="fake-chat", messages=[]).done_reason == "load"


def test_ps_says_when_each_model_goes_longest_first(server: LiveServer, client: ollama.Client) -> None:
    post(server, "/api/generate", {"model": "fake-chat"})
    before = datetime.now(UTC)
    listed = client.ps().models
    names = [m.model for m in listed]
    assert names[-1] == "short-chat:latest"  # 10 minutes; the others stay loaded
    expires = {m.model: m.expires_at for m in listed}
    forever = expires["fake-chat:latest"]
    assert forever is not None and abs(forever - (before + GO_MAX_DURATION)) < timedelta(minutes=1)
    short = expires["short-chat:latest"]
    assert short is not None and timedelta(minutes=9) < short - before <= timedelta(minutes=10, seconds=5)
    raw = httpx.get(server.url + "/api/ps").json()["models"]
    assert all(m["size_vram"] == 0 and m["expires_at"].endswith("Z") for m in raw)


def test_a_request_keep_alive_sets_when_the_model_goes(server: LiveServer, client: ollama.Client) -> None:
    client.generate(model="fake-chat", prompt="hi", options={"num_predict": 2}, keep_alive="2m")
    expires = loaded(client)["fake-chat:latest"]
    assert timedelta(minutes=1) < expires - datetime.now(UTC) <= timedelta(minutes=2, seconds=5)
    client.generate(model="fake-chat", keep_alive=-1)  # back to forever
    assert loaded(client)["fake-chat:latest"] - datetime.now(UTC) > timedelta(days=365 * 200)


def test_an_empty_embed_loads_an_unloaded_embedding_model(server: LiveServer, client: ollama.Client) -> None:
    assert post(server, "/api/generate", {"model": "fake-embed", "keep_alive": 0})["done_reason"] == "unload"
    assert "fake-embed:latest" not in loaded(client)
    reply = client.embed(model="fake-embed", input=[])
    assert isinstance(reply, ollama.EmbedResponse) and list(reply.embeddings) == []
    assert "fake-embed:latest" in loaded(client)


def test_unloading_needs_the_model_to_exist(server: LiveServer) -> None:
    reply = httpx.post(server.url + "/api/generate", json={"model": "nope", "keep_alive": 0})
    assert reply.status_code == 404
    assert reply.json()["error"].startswith("model 'nope' not found; the models you may use: fake-chat (fc)")


def test_loading_checks_what_the_model_can_do_first(server: LiveServer, client: ollama.Client) -> None:
    refused = httpx.post(server.url + "/api/chat", json={"model": "fake-embed", "messages": []})
    assert refused.status_code == 400 and refused.json() == {"error": '"fake-embed" does not support chat'}


def test_an_unloaded_model_stays_out_of_readiness(server: LiveServer) -> None:
    post(server, "/api/generate", {"model": "fake-chat", "keep_alive": 0})
    assert httpx.get(server.url + "/ready").status_code == 200  # unloaded is not broken
