"""One resolver for every family: a rollout route's alias, a model's alias and its id name the
same model through OpenAI, the Responses API, Anthropic, Ollama and OIP v2, under the same key
scope; an unknown name answers 404 with the names the key may use, in each family's shape."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers.keys import MakeKey, admin_headers, bearer

SECOND_CHAT = {"id": "fake-chat-2", "kind": "chat", "backend": "fake", "source": "-"}
SECOND_EMBED = {"id": "fake-embed-2", "kind": "embedding", "backend": "fake", "source": "-"}
MESSAGES = [{"role": "user", "content": "hello there"}]
TEXT_TENSOR = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hello"]}
PROMPT_TENSOR = {"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["Once upon"]}

# Each family's request to a model named NAME, and the request body.
REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "openai chat": ("chat", "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 3}),
    "openai completions": ("chat", "/v1/completions", {"prompt": "Once upon", "max_tokens": 3}),
    "openai embeddings": ("emb", "/v1/embeddings", {"input": "hello"}),
    "openai tokenize": ("chat", "/v1/tokenize", {"prompt": "hello"}),
    "responses": ("chat", "/v1/responses", {"input": "hello", "max_output_tokens": 3}),
    "anthropic messages": ("chat", "/v1/messages", {"messages": MESSAGES, "max_tokens": 3}),
    "anthropic count_tokens": ("chat", "/v1/messages/count_tokens", {"messages": MESSAGES}),
    "ollama chat": (
        "chat",
        "/api/chat",
        {"messages": MESSAGES, "stream": False, "options": {"num_predict": 3}},
    ),
    "ollama generate": (
        "chat",
        "/api/generate",
        {"prompt": "hi", "stream": False, "options": {"num_predict": 3}},
    ),
    "ollama embed": ("emb", "/api/embed", {"input": "hello"}),
    "ollama embeddings": ("emb", "/api/embeddings", {"prompt": "hello"}),
    "oip embedding": ("emb", "/v2/models/{name}/infer", {"inputs": [TEXT_TENSOR]}),
    "oip completion": ("chat", "/v2/models/{name}/infer", {"inputs": [PROMPT_TENSOR]}),
}


def send(gw: TestClient, secret: str, family: str, name: str | None = None) -> Any:
    alias, path, body = REQUESTS[family]
    name = name or alias
    if "{name}" in path:
        return gw.post(path.format(name=name), json=body, headers=bearer(secret))
    return gw.post(path, json={**body, "model": name}, headers=bearer(secret))


@pytest.fixture
def routed(gw: TestClient) -> TestClient:
    """Two routes: ``chat`` and ``emb``, each switched (blue-green) to a model loaded at run time."""
    for spec in (SECOND_CHAT, SECOND_EMBED):
        assert gw.post("/admin/models", json=spec, headers=admin_headers()).status_code == 201
    for alias, model in (("chat", "fake-chat-2"), ("emb", "fake-embed-2")):
        body = {"strategy": "blue-green", "variants": [{"model": model, "weight": 100}]}
        assert gw.put(f"/admin/routes/{alias}", json=body, headers=admin_headers()).status_code == 200
    return gw


@pytest.mark.parametrize("family", list(REQUESTS))
def test_a_route_alias_serves_through_every_family(
    routed: TestClient, make_key: MakeKey, family: str
) -> None:
    reply = send(routed, make_key(f"k-{family.replace(' ', '-')}"), family)
    assert reply.status_code == 200, reply.text
    served = REQUESTS[family][0]
    assert reply.headers["x-hearth-variant"] == {"chat": "fake-chat-2", "emb": "fake-embed-2"}[served]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/models/emb", "get"),
        ("/v2/models/emb", "get"),
        ("/v2/models/emb/ready", "get"),
        ("/v2/models/emb/versions/1", "get"),
    ],
)
def test_model_metadata_finds_a_route_alias(
    routed: TestClient, make_key: MakeKey, path: str, method: str
) -> None:
    reply = getattr(routed, method)(path, headers=bearer(make_key("meta")))
    assert reply.status_code == 200, reply.text


def test_ollama_show_and_load_find_a_route_alias(routed: TestClient, make_key: MakeKey) -> None:
    secret = make_key("ollama-meta")
    assert routed.post("/api/show", json={"model": "chat"}, headers=bearer(secret)).status_code == 200
    loaded = routed.post("/api/generate", json={"model": "chat"}, headers=bearer(secret))
    assert loaded.status_code == 200 and loaded.json()["done_reason"] == "load"


def test_a_key_scoped_to_a_route_uses_it_in_every_family_but_not_the_models_behind_it(
    routed: TestClient, make_key: MakeKey
) -> None:
    secret = make_key("scoped", models=["emb"])
    for family in ("openai embeddings", "ollama embed", "oip embedding"):
        assert send(routed, secret, family).status_code == 200, family
    for family in ("openai embeddings", "ollama embed", "oip embedding"):
        assert send(routed, secret, family, name="fake-embed").status_code == 403, family


# Each family's 404 for an unknown model: the status, and where the message is in its body.
MESSAGE_OF = {
    "openai chat": lambda body: body["error"]["message"],
    "responses": lambda body: body["error"]["message"],
    "anthropic messages": lambda body: body["error"]["message"],
    "ollama chat": lambda body: body["error"],
    "oip embedding": lambda body: body["error"],
}


@pytest.mark.parametrize("family", list(MESSAGE_OF))
def test_an_unknown_model_lists_what_the_key_may_use(
    routed: TestClient, make_key: MakeKey, family: str
) -> None:
    scoped = make_key(f"few-{family.replace(' ', '-')}", models=["fake-chat", "emb"])
    reply = send(routed, scoped, family, name="no-such-model")
    assert reply.status_code == 404, reply.text
    message = MESSAGE_OF[family](reply.json())
    assert "no-such-model" in message
    assert message.endswith("the models you may use: fake-chat (fc), emb"), message


def test_an_unknown_model_in_each_family_shape(routed: TestClient, make_key: MakeKey) -> None:
    secret = make_key("shapes")
    openai = send(routed, secret, "openai chat", name="nope").json()["error"]
    assert (openai["type"], openai["code"], openai["param"]) == (
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    anthropic = send(routed, secret, "anthropic messages", name="nope").json()
    assert anthropic["type"] == "error" and anthropic["error"]["type"] == "not_found_error"
    ollama = send(routed, secret, "ollama chat", name="nope:latest").json()
    assert ollama["error"].startswith("model 'nope:latest' not found; ")
    assert list(send(routed, secret, "oip embedding", name="nope").json()) == ["error"]
