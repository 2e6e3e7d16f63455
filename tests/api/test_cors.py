"""CORS: closed unless HEARTH_CORS_ORIGINS names the origins a browser page may call from."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
PREFLIGHT = {
    "Origin": "https://app.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_closed_by_default(client: TestClient) -> None:
    reply = client.post("/v1/chat/completions", json=CHAT, headers={"Origin": "https://app.example"})
    assert reply.status_code == 200 and "access-control-allow-origin" not in reply.headers
    preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers


def test_named_origins_may_call_and_read_the_headers(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, cors_origins="https://app.example, https://other.example")
    with TestClient(build_app(settings)) as client:
        wait_ready(client)
        preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        reply = client.post("/v1/chat/completions", json=CHAT, headers={"Origin": "https://app.example"})
        assert reply.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in reply.headers["access-control-expose-headers"]
        # An error answer is readable too (a page must see why it was refused).
        missing = client.post(
            "/v1/chat/completions", json={**CHAT, "model": "nope"}, headers={"Origin": "https://app.example"}
        )
        assert (
            missing.status_code == 404
            and missing.headers["access-control-allow-origin"] == "https://app.example"
        )
        other = client.options(
            "/v1/chat/completions", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
