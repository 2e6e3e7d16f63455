"""Errors in each family's own words: the core names what is wrong (the prompt, the output
limit, the output format) and each family's adapter says it with its own field names, and the
first errors a new user meets (no key, a wrong key, an unknown model) say what to do."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers.keys import bearer

MESSAGES = [{"role": "user", "content": "hello there"}]
TOO_MANY = 1_000_000
SCHEMA = {"type": "array", "uniqueItems": True}  # unenforceable: refused by name

# A request asking for far more output than the context holds, and the words its family uses.
OVER_LIMIT: dict[str, tuple[str, dict[str, Any], str]] = {
    "openai chat": ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": TOO_MANY}, "max_tokens"),
    "openai chat (newer name)": (
        "/v1/chat/completions",
        {"messages": MESSAGES, "max_completion_tokens": TOO_MANY},
        "max_completion_tokens",
    ),
    "openai completions": ("/v1/completions", {"prompt": "hi", "max_tokens": TOO_MANY}, "max_tokens"),
    "responses": ("/v1/responses", {"input": "hi", "max_output_tokens": TOO_MANY}, "max_output_tokens"),
    "anthropic": ("/v1/messages", {"messages": MESSAGES, "max_tokens": TOO_MANY}, "max_tokens"),
    "ollama chat": (
        "/api/chat",
        {"messages": MESSAGES, "stream": False, "options": {"num_predict": TOO_MANY}},
        "options.num_predict",
    ),
    "ollama generate": (
        "/api/generate",
        {"prompt": "hi", "stream": False, "options": {"num_predict": TOO_MANY}},
        "options.num_predict",
    ),
}


def message_and_param(body: dict[str, Any]) -> tuple[str, str | None]:
    error = body["error"]
    if isinstance(error, str):
        return error, None
    return str(error["message"]), error.get("param")


@pytest.mark.parametrize("family", list(OVER_LIMIT))
def test_the_output_limit_is_named_as_each_family_names_it(client: TestClient, family: str) -> None:
    path, body, field = OVER_LIMIT[family]
    reply = client.post(path, json={"model": "fake-chat", **body})
    assert reply.status_code == 400, reply.text
    message, param = message_and_param(reply.json())
    assert field in message and "{" not in message, message
    if param is not None:
        assert param == field


def test_oip_names_its_parameter(client: TestClient) -> None:
    body = {
        "inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["hi"]}],
        "parameters": {"max_tokens": TOO_MANY},
    }
    reply = client.post("/v2/models/fake-chat/infer", json=body)
    assert reply.status_code == 400 and "parameters.max_tokens" in reply.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": MESSAGES, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}}, "response_format.json_schema.schema"),
        ("/v1/responses", {"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": SCHEMA}}}, "text.format.schema"),
    ],
)  # fmt: skip
def test_a_schema_is_pointed_at_where_the_request_holds_it(
    client: TestClient, path: str, body: dict[str, Any], param: str
) -> None:
    reply = client.post(path, json={"model": "fake-chat", **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param and "uniqueItems" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("value", "param"), [(123, "input"), ({"text": "x"}, "input"), ([1.5], "input[0]"), (None, "input")]
)
def test_a_wrong_input_type_names_the_request_field(client: TestClient, value: object, param: str) -> None:
    """Not pydantic's own path through the union it tried (``input.str``): the request's field."""
    reply = client.post("/v1/embeddings", json={"model": "fake-embed", "input": value})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param}: "), error


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0].text"),
        ("hi", "messages"),
    ],
)
def test_a_nested_validation_error_names_the_nested_field(
    client: TestClient, messages: Any, param: str
) -> None:
    reply = client.post("/v1/chat/completions", json={"model": "fake-chat", "messages": messages})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text


# Every family's route without a key: its 401, and where its message is.
KEYED: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v1/chat/completions", {"model": "fake-chat", "messages": MESSAGES}),
    "responses": ("/v1/responses", {"model": "fake-chat", "input": "hi"}),
    "anthropic": ("/v1/messages", {"model": "fake-chat", "messages": MESSAGES, "max_tokens": 3}),
    "ollama": ("/api/chat", {"model": "fake-chat", "messages": MESSAGES}),
    "oip": ("/v2/models/fake-embed/infer", {"inputs": []}),
    "hearth": ("/v1/tokenize", {"model": "fake-chat", "prompt": "hi"}),
}


@pytest.mark.parametrize("family", list(KEYED))
@pytest.mark.parametrize("headers", [{}, bearer("hk-not-a-key")], ids=["no key", "wrong key"])
def test_a_401_says_how_to_get_a_key(gw: TestClient, family: str, headers: dict[str, str]) -> None:
    path, body = KEYED[family]
    reply = gw.post(path, json=body, headers=headers)
    assert reply.status_code == 401, reply.text
    message, _ = message_and_param(reply.json())
    assert "hearth keys create NAME" in message and "operator" in message, message
    if family == "anthropic":
        assert reply.json()["error"]["type"] == "authentication_error"
    elif family in ("ollama", "oip"):
        assert list(reply.json()) == ["error"]
    else:
        assert reply.json()["error"]["code"] == "invalid_api_key"


def test_a_wrong_admin_key_says_where_the_admin_key_is(gw: TestClient) -> None:
    reply = gw.get("/admin/keys", headers=bearer("hk-wrong-admin"))
    assert reply.status_code == 401 and "HEARTH_ADMIN_KEY" in reply.json()["error"]["message"]
