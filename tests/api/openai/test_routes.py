"""The OpenAI routes on fake engines: shapes, streaming, usage and sampling plumbing."""

from __future__ import annotations

import base64
import json

import numpy as np
from fastapi.testclient import TestClient

from tests.helpers.images import png_bytes
from tests.helpers.wire import sse_events


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["models"] == ["fake-chat", "fake-embed", "fake-vision"]


def test_models_list_and_get(client: TestClient) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["fake-chat", "fake-embed", "fake-vision"]
    assert all(m["object"] == "model" and m["ready"] for m in listed["data"])
    one = client.get("/v1/models/fc").json()  # by alias
    assert one["id"] == "fake-chat"
    assert one["details"]["context_length"] == 2048
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_chat_completion_shape_and_usage(client: TestClient) -> None:
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 5}
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) == 5
    assert choice["finish_reason"] == "length"
    usage = data["usage"]
    assert usage["completion_tokens"] == 5
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + 5
    assert reply.headers["x-request-id"].startswith("req_")


def test_chat_content_parts_and_system(client: TestClient) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "again"},
    ]
    reply = client.post(
        "/v1/chat/completions", json={"model": "fake-chat", "messages": messages, "max_tokens": 2}
    )
    assert reply.status_code == 200, reply.text


def test_chat_stop_sequence_ends_with_stop(client: TestClient) -> None:
    # The fake engine emits a fixed word cycle; seed 0 and this prompt start at a known word.
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 12, "seed": 0}
    full = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    stop_word = full.split()[3]
    stopped = client.post("/v1/chat/completions", json={**body, "stop": [stop_word]}).json()
    choice = stopped["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert stop_word not in choice["message"]["content"]
    assert full.startswith(choice["message"]["content"])


def test_chat_stream_chunks_usage_and_done(client: TestClient) -> None:
    body = {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse_events(reply.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(text.split()) == 4
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    # Every chunk, the usage chunk too, names the same fingerprint; later deltas carry no role.
    assert len({c["system_fingerprint"] for c in chunks}) == 1 and chunks[-1]["system_fingerprint"]
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:] if c["choices"])
    assert chunks[-2]["choices"][0]["delta"] == {}


def test_chat_n_choices(client: TestClient) -> None:
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "n": 3}
    data = client.post("/v1/chat/completions", json=body).json()
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert data["usage"]["completion_tokens"] == 9


def test_completions_text_and_tokens(client: TestClient) -> None:
    data = client.post(
        "/v1/completions", json={"model": "fake-chat", "prompt": "Once upon", "max_tokens": 3}
    ).json()
    assert data["object"] == "text_completion"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3
    tokens = client.post("/v1/completions", json={"model": "fake-chat", "prompt": [1, 5, 9], "max_tokens": 2})
    assert tokens.status_code == 200
    assert tokens.json()["usage"]["prompt_tokens"] == 3
    batch = client.post(
        "/v1/completions", json={"model": "fake-chat", "prompt": ["a", "b c"], "max_tokens": 2}
    )
    assert [c["index"] for c in batch.json()["choices"]] == [0, 1]


def test_completions_stream(client: TestClient) -> None:
    body = {"model": "fake-chat", "prompt": "hi", "max_tokens": 3, "stream": True}
    with client.stream("POST", "/v1/completions", json=body) as reply:
        events = sse_events(reply.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks).split().__len__() == 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c or c["usage"] is None for c in chunks)


def test_embeddings_float_and_base64(client: TestClient) -> None:
    floats = client.post("/v1/embeddings", json={"model": "fake-embed", "input": ["a b", "c"]}).json()
    assert floats["object"] == "list"
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > 0
    b64 = client.post(
        "/v1/embeddings", json={"model": "fake-embed", "input": "a b", "encoding_format": "base64"}
    ).json()
    decoded = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats["data"][0]["embedding"])


def test_classify_json_and_multipart(client: TestClient) -> None:
    image = png_bytes()
    body = {"model": "fake-vision", "image": base64.b64encode(image).decode(), "top_k": 2}
    data = client.post("/v1/classify", json=body).json()
    assert data["model"] == "fake-vision"
    assert len(data["predictions"]) == 2
    assert {"label", "confidence", "index"} <= set(data["predictions"][0])
    assert data["usage"]["images"] == 1
    upload = client.post(
        "/v1/classify",
        files={"image": ("x.png", image, "image/png")},
        data={"top_k": "3", "model": "fake-vision"},
    )
    assert upload.status_code == 200, upload.text
    assert len(upload.json()["predictions"]) == 3
    assert upload.json()["predictions"][0] == data["predictions"][0]
    data_url = client.post("/v1/classify", json={**body, "image": "data:image/png;base64," + body["image"]})
    assert data_url.status_code == 200


def test_tokenize(client: TestClient) -> None:
    reply = client.post("/v1/tokenize", json={"model": "fake-chat", "prompt": "a bb ccc"}).json()
    assert reply == {"tokens": [1, 1, 2, 3], "count": 4, "max_model_len": 2048}
    chat = client.post(
        "/v1/tokenize", json={"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]}
    )
    assert chat.json()["count"] > 1


def test_metrics_count_requests_and_tokens(client: TestClient) -> None:
    client.post(
        "/v1/chat/completions",
        json={"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4},
    )
    client.post(
        "/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    )
    text = client.get("/metrics").text
    assert (
        'hearth_requests_total{family="openai",model="fake-chat",route="POST /v1/chat/completions",status="200",variant="fake-chat"} 1.0'
        in text
    )
    assert 'status="404"' in text
    assert 'hearth_tokens_total{model="fake-chat",type="completion",variant="fake-chat"} 4.0' in text
    assert "hearth_models_ready 3.0" in text
    assert "hearth_time_to_first_token_seconds_bucket" in text
    assert 'hearth_engine_running{model="fake-chat"} 0.0' in text
    assert 'hearth_engine_waiting{model="fake-chat"} 0.0' in text
    assert 'hearth_engine_batches_total{model="fake-embed"} 0.0' in text


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/classify",
        "/v1/models",
        "/v1/models/{model_id}",
        "/v1/usage",
        "/admin/keys",
        "/health",
        "/ready",
        "/metrics",
    ):
        assert path in paths, path
    chat = paths["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ChatCompletionRequest"
    )
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    # The key headers are security schemes, required on every keyed route and nowhere else.
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerKey"]["scheme"] == "bearer"
    assert schemes["xApiKey"] == {**schemes["xApiKey"], "in": "header", "name": "x-api-key"}
    assert chat["security"] == [{"bearerKey": []}, {"xApiKey": []}]
    assert "security" in paths["/admin/keys"]["get"]
    assert "security" not in paths["/health"]["get"]
    classify = paths["/v1/classify"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(classify)
    assert client.get("/docs").status_code == 200
