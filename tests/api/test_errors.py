"""Bad input gets a clear error in the OpenAI envelope, with the right status; never a 500."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.images import png_bytes
from tests.helpers.wire import assert_envelope, sse_events

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_malformed_json(client: TestClient) -> None:
    reply = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    error = assert_envelope(reply, 400)
    assert "JSON" in str(error["message"])
    assert error["type"] == "invalid_request_error"


def test_json_without_a_json_content_type_is_read_as_json(client: TestClient) -> None:
    body = json.dumps({"model": "fake-embed", "input": "hi"}).encode()
    for content_type in ("application/x-www-form-urlencoded", "text/plain; charset=utf-8", None):
        headers = {"content-type": content_type} if content_type else {}
        reply = client.post("/v1/embeddings", content=body, headers=headers)
        assert reply.status_code == 200, (content_type, reply.text)
        assert len(reply.json()["data"]) == 1
    # A real form body is still refused, in the envelope and with a message saying what to send.
    form = client.post("/v1/embeddings", data={"model": "fake-embed", "input": "hi"})
    error = assert_envelope(form, 400)
    assert "JSON object" in str(error["message"])


def test_missing_and_invalid_fields_are_400_not_422(client: TestClient) -> None:
    error = assert_envelope(client.post("/v1/chat/completions", json={"model": "fake-chat"}), 400)
    assert error["param"] == "messages"
    error = assert_envelope(client.post("/v1/chat/completions", json={**CHAT, "temperature": 7}), 400)
    assert error["param"] == "temperature"
    assert_envelope(client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 0}), 400)
    assert_envelope(client.post("/v1/chat/completions", json={**CHAT, "messages": []}), 400)
    assert_envelope(
        client.post("/v1/chat/completions", json={**CHAT, "stop": ["a", "b", "c", "d", "e"]}), 400
    )
    assert_envelope(client.post("/v1/chat/completions", json={**CHAT, "logit_bias": {"abc": 1}}), 400)
    assert_envelope(client.post("/v1/chat/completions", json=[1, 2]), 400)
    assert_envelope(client.post("/v1/embeddings", json={"model": "fake-embed", "input": []}), 400)
    assert_envelope(client.post("/v1/embeddings", json={"model": "fake-embed", "input": [[1, 2]]}), 400)


def test_unknown_model_and_wrong_kind(client: TestClient) -> None:
    assert_envelope(
        client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"}), 404, "model_not_found"
    )
    assert_envelope(
        client.post("/v1/embeddings", json={"model": "nope", "input": "x"}), 404, "model_not_found"
    )
    error = assert_envelope(client.post("/v1/embeddings", json={"model": "fake-chat", "input": "x"}), 400)
    assert error["param"] == "model"


def test_image_content_to_text_model_is_rejected(client: TestClient) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [{"role": "user", "content": [part]}]
    assert_envelope(client.post("/v1/chat/completions", json={**CHAT, "messages": messages}), 400)


def test_context_length_exceeded(client: TestClient) -> None:
    too_many = {**CHAT, "max_tokens": 5000}
    error = assert_envelope(
        client.post("/v1/chat/completions", json=too_many), 400, "context_length_exceeded"
    )
    assert error["param"] == "max_tokens"
    long_prompt = {**CHAT, "messages": [{"role": "user", "content": "word " * 3000}]}
    assert_envelope(client.post("/v1/chat/completions", json=long_prompt), 400, "context_length_exceeded")
    streamed = {**too_many, "stream": True}
    assert_envelope(client.post("/v1/chat/completions", json=streamed), 400, "context_length_exceeded")
    assert_envelope(
        client.post("/v1/completions", json={"model": "fake-chat", "prompt": "x", "max_tokens": 9999}),
        400,
        "context_length_exceeded",
    )


def test_broken_and_truncated_images(client: TestClient) -> None:
    garbage = base64.b64encode(b"definitely not an image").decode()
    assert_envelope(
        client.post("/v1/classify", json={"image": garbage, "model": "fake-vision"}), 400, "invalid_image"
    )
    truncated = base64.b64encode(png_bytes()[:60]).decode()
    assert_envelope(
        client.post("/v1/classify", json={"image": truncated, "model": "fake-vision"}), 400, "invalid_image"
    )
    assert_envelope(
        client.post("/v1/classify", json={"image": "%%%", "model": "fake-vision"}), 400, "invalid_image"
    )
    no_file = client.post("/v1/classify", data={"top_k": "1"}, files={"other": ("a", b"x")})
    assert_envelope(no_file, 400, "invalid_image")
    assert_envelope(client.post("/v1/classify", json={"model": "fake-vision"}), 400)
    bad_k = {"image": base64.b64encode(png_bytes()).decode(), "top_k": 0, "model": "fake-vision"}
    assert_envelope(client.post("/v1/classify", json=bad_k), 400)


def test_body_too_large(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path, max_body_bytes=2048))
    with TestClient(app) as client:
        wait_ready(client)
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        assert_envelope(client.post("/v1/chat/completions", json=big), 413)

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b" " * 1000

        chunked = client.post(
            "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_envelope(chunked, 413)


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_envelope(client.get("/v1/nothing-here"), 404)
    assert_envelope(client.get("/v1/chat/completions"), 405)


def test_mid_stream_failure_sends_error_event_then_done(client: TestClient) -> None:
    body = {
        **CHAT,
        "messages": [{"role": "user", "content": "FAIL_MIDSTREAM"}],
        "max_tokens": 10,
        "stream": True,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        events = sse_events(reply.read().decode())
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "engine_error"
    assert error["type"] == "server_error"
    assert any("content" in json.loads(e)["choices"][0]["delta"] for e in events[1:-2])


def test_mid_stream_failure_non_streaming_is_500_envelope(client: TestClient) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "FAIL_MIDSTREAM"}], "max_tokens": 10}
    assert_envelope(client.post("/v1/chat/completions", json=body), 500, "engine_error")


@pytest.mark.parametrize("stream", [False, True])
def test_queue_full_is_503_with_retry_after(tmp_path: Path, stream: bool) -> None:
    import threading

    app = build_app(fake_settings(tmp_path, chat={"slots": 1, "max_queue": 1}))
    with TestClient(app) as client:
        wait_ready(client)
        engine = app.state.registry.get("fake-chat", object)
        engine.token_delay_s = 0.05
        slow = {**CHAT, "max_tokens": 40}
        threads = [
            threading.Thread(target=client.post, args=("/v1/chat/completions",), kwargs={"json": slow})
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        import time

        deadline = time.monotonic() + 5
        while (engine.running, engine.waiting) != (1, 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (engine.running, engine.waiting) == (1, 1)
        reply = client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        error = assert_envelope(reply, 503, "server_overloaded")
        assert "busy" in str(error["message"])
        assert int(reply.headers["retry-after"]) >= 1
        for t in threads:
            t.join()
