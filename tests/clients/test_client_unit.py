"""The client without a server: configuration, request shapes, error mapping and SSE decoding."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hearth.clients import (
    AsyncHearthClient,
    AuthenticationError,
    BadRequestError,
    ConnectionFailed,
    HearthAPIError,
    HearthClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from hearth.clients._config import api_base
from hearth.clients.streaming import StreamDecoder
from tests.helpers.live import free_port

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def client_for(handler: Handler, **kwargs: Any) -> HearthClient:
    return HearthClient(
        kwargs.pop("base_url", "http://hearth.test"), transport=httpx.MockTransport(handler), **kwargs
    )


def sse(*events: object) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" if not isinstance(e, str) else f"{e}\n\n" for e in events]
    return "".join(lines).encode()


def chunk(
    content: str | None = None, finish: str | None = None, usage: dict[str, int] | None = None
) -> object:
    choices = [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    return {"id": "c1", "model": "m", "choices": choices, "usage": usage}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("https://proxy.example/hearth", "https://proxy.example/hearth/v1"),
        ("https://api.example.com/openai/v1beta", "https://api.example.com/openai/v1beta"),
    ],
)
def test_base_url_with_or_without_v1(given: str, expected: str) -> None:
    assert api_base(given) == expected


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        HearthClient("127.0.0.1:8000")


def test_environment_configures_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [{"id": "a", "kind": "chat"}]})

    monkeypatch.setenv("HEARTH_BASE_URL", "http://env.test:9000/")
    monkeypatch.setenv("HEARTH_API_KEY", "hk-from-env")
    client = HearthClient(transport=httpx.MockTransport(handler))
    assert client.base_url == "http://env.test:9000/v1"
    assert [m.id for m in client.list_models()] == ["a"]
    assert str(seen[0].url) == "http://env.test:9000/v1/models"
    assert seen[0].headers["authorization"] == "Bearer hk-from-env"
    # Arguments beat the environment; no key at all sends no header.
    HearthClient("http://arg.test", api_key="", transport=httpx.MockTransport(handler)).list_models()
    assert str(seen[1].url) == "http://arg.test/v1/models" and "authorization" not in seen[1].headers


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HearthClient().base_url == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("status", "body", "cls", "type_", "code"),
    [
        (400, envelope("temperature: too big", "invalid_request_error", "invalid_value", "temperature"),
         BadRequestError, "invalid_request_error", "invalid_value"),
        (401, envelope("incorrect API key provided", "authentication_error", "invalid_api_key"),
         AuthenticationError, "authentication_error", "invalid_api_key"),
        (403, envelope("this API key may not use the model 'x'", "permission_error", "model_not_allowed", "model"),
         PermissionDeniedError, "permission_error", "model_not_allowed"),
        (404, envelope("the model 'x' does not exist", "invalid_request_error", "model_not_found", "model"),
         NotFoundError, "invalid_request_error", "model_not_found"),
        (413, envelope("request body too large", "invalid_request_error", "request_too_large"),
         BadRequestError, "invalid_request_error", "request_too_large"),
        (431, envelope("headers too large", "invalid_request_error"), BadRequestError, "invalid_request_error", None),
        (429, envelope("rate limit reached", "rate_limit_error", "rate_limit_exceeded"),
         RateLimitError, "rate_limit_error", "rate_limit_exceeded"),
        (500, envelope("engine failed", "server_error", "engine_error"), ServerError, "server_error", "engine_error"),
        (503, envelope("queue full", "server_error", "server_overloaded"),
         ServerError, "server_error", "server_overloaded"),
        (409, envelope("conflict", "conflict_error"), HearthAPIError, "conflict_error", None),
    ],
)  # fmt: skip
def test_errors_are_mapped_from_status_and_envelope(
    status: int, body: dict[str, Any], cls: type[HearthAPIError], type_: str, code: str | None
) -> None:
    headers = {"Retry-After": "3"} if status in (429, 503) else {}
    client = client_for(lambda r: httpx.Response(status, json=body, headers=headers))
    with pytest.raises(cls) as caught:
        client.chat("hi", model="m")
    error = caught.value
    assert type(error) is cls
    assert (error.status, error.type, error.code) == (status, type_, code)
    assert error.param == body["error"]["param"]
    assert error.message == body["error"]["message"]
    assert error.retry_after == (3.0 if headers else None)
    assert str(status) in str(error)


def test_loose_error_shapes_and_retry_after_forms() -> None:
    client = client_for(lambda r: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ServerError, match="bad gateway"):
        client.list_models()
    client = client_for(lambda r: httpx.Response(400, json={"error": "plain text error"}))
    with pytest.raises(BadRequestError, match="plain text error"):
        client.list_models()
    client = client_for(lambda r: httpx.Response(422, json={"detail": "unprocessable"}))
    with pytest.raises(BadRequestError, match="unprocessable"):
        client.list_models()
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    client = client_for(lambda r: httpx.Response(429, json={}, headers={"Retry-After": date}))
    with pytest.raises(RateLimitError) as caught:
        client.list_models()
    assert caught.value.retry_after is not None and 25 < caught.value.retry_after <= 30
    client = client_for(lambda r: httpx.Response(429, json={}, headers={"retry-after-ms": "1500"}))
    with pytest.raises(RateLimitError) as caught:
        client.list_models()
    assert caught.value.retry_after == 1.5


def test_connection_refused_names_the_url() -> None:
    port = free_port()
    client = HearthClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ConnectionFailed) as caught:
        client.chat("hi", model="m")
    assert f"no server is running at http://127.0.0.1:{port}" in caught.value.message
    assert caught.value.status is None
    with pytest.raises(ConnectionFailed):
        client.chat_stream("hi", model="m")


def test_chat_request_body_and_result() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "id": "x",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                "provider_extra": {"kept": True},
            },
        )

    client = client_for(handler)
    reply = client.chat(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        model="m",
        max_tokens=5,
        temperature=None,
        extra_body={"top_k": 3},
    )
    assert bodies[0] == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "top_k": 3,
    }
    assert reply.text == "hello" and reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens == 4
    assert reply.model_extra == {"provider_extra": {"kept": True}}


def test_stream_deltas_usage_and_finish_reason() -> None:
    body = sse(
        ": a comment",
        chunk(""),
        chunk("Hel"),
        chunk("lo"),
        chunk(None, "stop"),
        chunk(usage={"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}),
        "data: [DONE]",
    )
    requests: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with client_for(handler).chat_stream("hi", model="m") as stream:
        assert list(stream) == ["Hel", "lo"]
    assert requests[0]["stream"] is True and requests[0]["stream_options"] == {"include_usage": True}
    assert stream.text == "Hello" and stream.finish_reason == "stop" and stream.model == "m"
    assert stream.usage is not None and stream.usage.total_tokens == 4
    assert list(stream) == []  # a stream is read once


def test_mid_stream_error_event_raises_the_mapped_error() -> None:
    failure = envelope("the engine failed mid-stream", "server_error", "engine_error")
    body = sse(chunk("one"), chunk(" two"), failure, "data: [DONE]")
    client = client_for(lambda r: httpx.Response(200, content=body))
    received: list[str] = []
    with pytest.raises(ServerError) as caught:
        for delta in client.chat_stream("hi", model="m"):
            received.append(delta)
    assert received == ["one", " two"]
    assert caught.value.code == "engine_error" and caught.value.message == "the engine failed mid-stream"
    decoder = StreamDecoder("chat")
    with pytest.raises(RateLimitError):
        decoder.feed("data: " + json.dumps(envelope("slow down", "rate_limit_error", "rate_limit_exceeded")))
    with pytest.raises(ServerError, match="invalid event"):
        StreamDecoder("chat").feed("data: {not json")


def test_error_before_the_stream_starts() -> None:
    client = client_for(
        lambda r: httpx.Response(404, json=envelope("no model", "invalid_request_error", "model_not_found"))
    )
    with pytest.raises(NotFoundError, match="no model"):
        client.chat_stream("hi", model="nope")


def test_classify_uploads_a_file_and_downloads_urls_without_the_key(tmp_path: Any) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "images.test":
            return httpx.Response(200, content=b"PNGDATA", headers={"content-type": "image/png"})
        return httpx.Response(
            200,
            json={"id": "c", "model": "v", "predictions": [{"label": "cat", "confidence": 0.9, "index": 1}]},
        )

    client = client_for(handler, api_key="hk-secret")
    image = tmp_path / "cat.png"
    image.write_bytes(b"FILEDATA")
    assert client.classify(image, top_k=1).predictions[0].label == "cat"
    assert client.classify("https://images.test/pics/cat.png", model="v").model == "v"
    upload, download, url_upload = seen
    assert b'name="image"; filename="cat.png"' in upload.read() and b"FILEDATA" in upload.content
    assert b'name="top_k"' in upload.content and b'name="model"' not in upload.content
    assert str(download.url) == "https://images.test/pics/cat.png" and "authorization" not in download.headers
    assert b"PNGDATA" in url_upload.read() and b'name="model"' in url_upload.content
    assert url_upload.headers["authorization"] == "Bearer hk-secret"
    part = client.image_part(b"\x89PNG")
    assert part == {
        "type": "image_url",
        "image_url": {"url": "data:application/octet-stream;base64,iVBORw=="},
    }
    with pytest.raises(HearthAPIError, match="could not read the image"):
        client.classify(tmp_path / "missing.png")


async def test_async_client_shares_the_same_behaviour() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(401, json=envelope("incorrect API key provided", "authentication_error"))
        return httpx.Response(200, content=sse(chunk("a"), chunk("b", "length"), "data: [DONE]"))

    async with AsyncHearthClient("http://hearth.test/v1", transport=httpx.MockTransport(handler)) as client:
        stream = await client.chat_stream("hi", model="m")
        assert [d async for d in stream] == ["a", "b"]
        assert stream.finish_reason == "length" and stream.usage is None
        with pytest.raises(AuthenticationError):
            await client.list_models()
