"""Every family's answers, bodies and stream events alike, against its published description
(tests/helpers/specs.py says which): the shapes strict clients and generated SDKs rely on."""

from __future__ import annotations

import json
from typing import Any

import ollama
import pytest
from fastapi.testclient import TestClient

from tests.helpers import specs
from tests.helpers.wire import sse_events

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}},
    "required": ["city"],
}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def _sse_json(client: TestClient, path: str, body: dict[str, Any]) -> list[Any]:
    with client.stream("POST", path, json=body) as reply:
        assert reply.status_code == 200
        events = sse_events(reply.read().decode())
    return [json.loads(e) for e in events if e != "[DONE]"]


# --- OpenAI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"tools": OPENAI_TOOLS, "tool_choice": NAMED}, {"n": 2, "stop": ["zz"], "seed": 3},
     {"response_format": {"type": "json_object"}}],
    ids=["text", "tool", "n", "json"],
)  # fmt: skip
def test_openai_chat_bodies_and_chunks(client: TestClient, extra: dict[str, Any]) -> None:
    body = {"model": "fake-chat", "messages": USER, "max_tokens": 40, **extra}
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    specs.openai(reply.json(), "CreateChatCompletionResponse")
    chunks = _sse_json(
        client, "/v1/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert len(chunks) > 2
    for chunk in chunks:
        specs.openai(chunk, "CreateChatCompletionStreamResponse")


def test_openai_completions_embeddings_and_models(client: TestClient) -> None:
    body = {"model": "fake-chat", "prompt": "Once upon", "max_tokens": 6}
    specs.openai(client.post("/v1/completions", json=body).json(), "CreateCompletionResponse")
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    for chunk in _sse_json(client, "/v1/completions", stream):
        specs.openai_completion_chunk(chunk)
    # Float vectors only: the description types ``embedding`` as an array, though OpenAI (and
    # Hearth) send a string for ``encoding_format: base64``.
    embed = {"model": "fake-embed", "input": ["a", "b"]}
    specs.openai(client.post("/v1/embeddings", json=embed).json(), "CreateEmbeddingResponse")
    specs.openai(client.get("/v1/models").json(), "ListModelsResponse")
    specs.openai(client.get("/v1/models/fake-chat").json(), "Model")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [("POST", "/v1/chat/completions", {"model": "nope", "messages": USER}, 404),
     ("POST", "/v1/chat/completions", {"model": "fake-chat"}, 400),
     ("POST", "/v1/embeddings", {"model": "fake-chat", "input": "x"}, 400),
     ("GET", "/v1/models/nope", None, 404),
     ("GET", "/v1/responses/resp_nope", None, 404)],
)  # fmt: skip
def test_openai_errors(client: TestClient, method: str, path: str, body: Any, status: int) -> None:
    reply = client.request(method, path, json=body)
    assert reply.status_code == status, reply.text
    specs.openai(reply.json(), "ErrorResponse")


def test_openai_responses_objects_events_and_items(client: TestClient) -> None:
    body = {"model": "fake-chat", "input": "Weather in Paris?", "max_output_tokens": 30}
    first = client.post("/v1/responses", json=body).json()
    specs.openai(first, "Response")
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    called = client.post("/v1/responses", json={**body, "tools": tools, "tool_choice": "required"}).json()
    specs.openai(called, "Response")
    assert called["output"][0]["type"] == "function_call"
    follow = {**body, "previous_response_id": called["id"],
              "input": [{"type": "function_call_output", "call_id": called["output"][0]["call_id"], "output": "sunny"}]}  # fmt: skip
    specs.openai(client.post("/v1/responses", json=follow).json(), "Response")
    for stream_body in (
        {**body, "stream": True},
        {**body, "tools": tools, "tool_choice": "required", "stream": True},
    ):
        events = _sse_json(client, "/v1/responses", stream_body)
        assert events[-1]["type"] in {"response.completed", "response.incomplete"}
        for event in events:
            specs.openai_response_event(event)
    specs.openai(client.get(f"/v1/responses/{first['id']}").json(), "Response")
    specs.openai(client.get(f"/v1/responses/{first['id']}/input_items").json(), "ResponseItemList")


# --- Anthropic -------------------------------------------------------------------------------------

MESSAGE = {"model": "fake-chat", "max_tokens": 30, "messages": USER}
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": WEATHER}]


@pytest.mark.parametrize(
    "extra",
    [{}, {"tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "tool", "name": "get_weather"}},
     {"system": "Be brief.", "stop_sequences": ["zz"]}],
    ids=["text", "tool", "system"],
)  # fmt: skip
def test_anthropic_messages_and_events(client: TestClient, extra: dict[str, Any]) -> None:
    reply = client.post("/v1/messages", json={**MESSAGE, **extra})
    assert reply.status_code == 200, reply.text
    specs.anthropic_message(reply.json())
    events = _sse_json(client, "/v1/messages", {**MESSAGE, **extra, "stream": True})
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    for event in events:
        specs.anthropic_event(event)


def test_anthropic_count_tokens_and_errors(client: TestClient) -> None:
    counted = client.post("/v1/messages/count_tokens", json={"model": "fake-chat", "messages": USER})
    specs.anthropic_token_count(counted.json())
    for bad in ({**MESSAGE, "model": "nope"}, {"model": "fake-chat", "messages": USER}):
        reply = client.post("/v1/messages", json=bad)
        assert reply.status_code in {400, 404}
        specs.anthropic_error(reply.json())


# --- Ollama ----------------------------------------------------------------------------------------


def test_ollama_bodies_and_stream_lines(client: TestClient) -> None:
    chat = {"model": "fake-chat", "messages": USER, "options": {"num_predict": 6}}
    specs.ollama_body(client.post("/api/chat", json={**chat, "stream": False}).json(), ollama.ChatResponse)
    for line in client.post("/api/chat", json=chat).text.splitlines():
        specs.ollama_body(json.loads(line), ollama.ChatResponse)
    generate = {"model": "fake-chat", "prompt": "Once upon", "options": {"num_predict": 6}}
    specs.ollama_body(
        client.post("/api/generate", json={**generate, "stream": False}).json(), ollama.GenerateResponse
    )
    for line in client.post("/api/generate", json=generate).text.splitlines():
        specs.ollama_body(json.loads(line), ollama.GenerateResponse)
    specs.ollama_body(
        client.post("/api/embed", json={"model": "fake-embed", "input": ["a"]}).json(), ollama.EmbedResponse
    )
    specs.ollama_body(client.get("/api/tags").json(), ollama.ListResponse)
    specs.ollama_body(client.get("/api/ps").json(), ollama.ProcessResponse)
    specs.ollama_body(client.post("/api/show", json={"model": "fake-chat"}).json(), ollama.ShowResponse)


# --- Open Inference Protocol v2 ----------------------------------------------------------------------


def test_oip_metadata_inference_and_errors(client: TestClient) -> None:
    specs.oip(client.get("/v2").json(), "metadata_server_response")
    specs.oip(client.get("/v2/models/fake-embed").json(), "metadata_model_response")
    texts = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}
    reply = client.post("/v2/models/fake-embed/infer", json=texts)
    assert reply.status_code == 200, reply.text
    specs.oip(reply.json(), "inference_response")
    missing = client.post("/v2/models/nope/infer", json=texts)
    assert missing.status_code == 404
    specs.oip(missing.json(), "inference_error_response")
    specs.oip(client.get("/v2/models/nope").json(), "metadata_model_error_response")
