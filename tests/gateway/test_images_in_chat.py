"""Images sent to a text-only chat model: its image model's labels reach it as text, in every
family; broken, oversized and (unless allowed) remote images are refused with a clear 400."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.images import png_bytes


def _client(tmp_path: Path, **settings: Any) -> TestClient:
    return TestClient(build_app(fake_settings(tmp_path, chat={"image_model": "fake-vision"}, **settings)))


@pytest.fixture
def seen(tmp_path: Path) -> Iterator[tuple[TestClient, list[str]]]:
    with _client(tmp_path) as client:
        wait_ready(client)
        engine = client.app.state.registry.get("fake-chat", object)  # type: ignore[attr-defined]
        prompts: list[str] = []
        render = engine.render_chat

        def capture(*args: Any, **kwargs: Any) -> str:
            text: str = render(*args, **kwargs)
            prompts.append(text)
            return text

        engine.render_chat = capture
        yield client, prompts


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_openai_image_parts_become_the_classifiers_labels(seen: tuple[TestClient, list[str]]) -> None:
    client, prompts = seen
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": data_url(png_bytes())}},
    ]
    reply = client.post(
        "/v1/chat/completions",
        json={"model": "fake-chat", "messages": [{"role": "user", "content": content}], "max_tokens": 3},
    )
    assert reply.status_code == 200, reply.text
    assert "What is this?" in prompts[-1] and "an image classifier (fake-vision) labels it:" in prompts[-1]
    assert any(label in prompts[-1] for label in ("tabby cat", "coffee mug", "rocket", "astronaut"))
    assert client.app.state.root.database.ledger.flush(10)  # type: ignore[attr-defined]
    with client.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(sa.text("SELECT images FROM usage_records")).scalar_one() == 1


def test_anthropic_and_ollama_images_go_the_same_way(seen: tuple[TestClient, list[str]]) -> None:
    client, prompts = seen
    b64 = base64.b64encode(png_bytes((10, 200, 30))).decode()
    block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}}
    reply = client.post(
        "/v1/messages",
        json={
            "model": "fake-chat",
            "max_tokens": 3,
            "messages": [{"role": "user", "content": [block, {"type": "text", "text": "Describe"}]}],
        },
    )
    assert reply.status_code == 200, reply.text
    assert "labels it:" in prompts[-1]
    reply = client.post(
        "/api/chat",
        json={
            "model": "fake-chat",
            "stream": False,
            "messages": [{"role": "user", "content": "And this?", "images": [b64]}],
        },
    )
    assert reply.status_code == 200, reply.text
    assert "labels it:" in prompts[-1] and "And this?" in prompts[-1]


def test_bad_images_are_clear_400s(tmp_path: Path) -> None:
    with _client(tmp_path, max_image_pixels=100) as client:
        wait_ready(client)

        def send(url: str) -> Any:
            content = [{"type": "image_url", "image_url": {"url": url}}]
            return client.post(
                "/v1/chat/completions",
                json={"model": "fake-chat", "messages": [{"role": "user", "content": content}]},
            )

        broken = send(data_url(b"\x89PNG\r\n\x1a\nnot really"))
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_image"
        big = send(data_url(png_bytes()))  # 32x32 = 1024 pixels, over the limit of 100
        assert big.status_code == 400 and "too large" in big.json()["error"]["message"]
        remote = send("https://example.com/cat.png")
        assert remote.status_code == 400 and remote.json()["error"]["code"] == "image_url_not_allowed"
        not_b64 = send("data:image/png;base64,%%%")
        assert not_b64.status_code == 400 and not_b64.json()["error"]["code"] == "invalid_image"


def test_image_urls_are_fetched_when_allowed(tmp_path: Path) -> None:
    image = png_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with _client(tmp_path, fetch_image_urls=True, max_image_fetch_bytes=4096) as client:
            wait_ready(client)
            url = f"http://127.0.0.1:{server.server_address[1]}/cat.png"
            content = [{"type": "image_url", "image_url": {"url": url}}]
            reply = client.post(
                "/v1/chat/completions",
                json={
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": content}],
                    "max_tokens": 2,
                },
            )
            assert reply.status_code == 200, reply.text
        with _client(tmp_path / "small", fetch_image_urls=True, max_image_fetch_bytes=1024) as client:
            wait_ready(client)
            big = png_bytes()
            image = big * 40  # larger than the limit
            reply = client.post(
                "/v1/chat/completions",
                json={"model": "fake-chat", "messages": [{"role": "user", "content": content}]},
            )
            assert reply.status_code == 400 and "larger than 1024 bytes" in reply.json()["error"]["message"]
    finally:
        server.shutdown()


def test_the_model_card_says_it_is_a_pipeline(seen: tuple[TestClient, list[str]]) -> None:
    client, _ = seen
    card = client.get("/v1/models/fake-chat").json()
    assert (
        "vision:classifier-labels" in card["capabilities"] and card["details"]["image_model"] == "fake-vision"
    )
