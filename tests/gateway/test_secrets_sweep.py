"""Known secrets (an API key, the admin key, an upstream's key) through every family, its happy
and error paths, an upstream that fails, and the metrics page: none of them may appear in an
answer's body or headers, in /metrics, or in the server's logs (JSON and text)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import LiveServer
from tests.helpers.upstream import FakeUpstream

ADMIN = "admin-SWEEP-secret-7f3a9c"
UPSTREAM_KEY = "sk-upstream-SWEEP-secret-41d2"
CHAT = [{"role": "user", "content": "hi"}]


def _models(upstream: FakeUpstream) -> str:
    return json.dumps([
        {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-"},
        {"id": "fake-embed", "kind": "embedding", "backend": "fake", "source": "-"},
        {"id": "up-chat", "kind": "chat", "backend": "openai", "source": upstream.url, "api_key_env": "SWEEP_UPSTREAM_KEY"},
    ])  # fmt: skip


def _traffic(base: str, key: str) -> list[httpx.Response]:
    """Every family: answers, streams and the errors a client can provoke."""
    bearer, anth = {"Authorization": f"Bearer {key}"}, {"x-api-key": key, "anthropic-version": "2023-06-01"}
    wrong = {"Authorization": f"Bearer {key}x"}
    calls: list[tuple[str, str, dict[str, str], object]] = [
        ("POST", "/v1/chat/completions", bearer, {"model": "fake-chat", "messages": CHAT, "max_tokens": 3}),
        ("POST", "/v1/chat/completions", bearer, {"model": "fake-chat", "messages": CHAT, "stream": True}),
        ("POST", "/v1/chat/completions", wrong, {"model": "fake-chat", "messages": CHAT}),
        ("POST", "/v1/chat/completions", bearer, {"model": "nope", "messages": CHAT}),
        ("POST", "/v1/chat/completions", bearer, "{not json"),
        ("POST", "/v1/chat/completions", bearer, {"model": "up-chat", "messages": CHAT, "max_tokens": 3}),
        ("POST", "/v1/completions", bearer, {"model": "fake-chat", "prompt": "a", "max_tokens": 2}),
        ("POST", "/v1/embeddings", bearer, {"model": "fake-embed", "input": "a"}),
        ("POST", "/v1/responses", bearer, {"model": "fake-chat", "input": "hi", "max_output_tokens": 3}),
        ("GET", "/v1/responses/resp_missing", bearer, None),
        ("GET", "/v1/models", wrong, None),
        ("POST", "/v1/messages", anth, {"model": "fake-chat", "messages": CHAT, "max_tokens": 3}),
        (
            "POST",
            "/v1/messages",
            {**anth, "x-api-key": "hk-wrong"},
            {"model": "fake-chat", "messages": CHAT, "max_tokens": 3},
        ),
        ("POST", "/v1/messages", anth, {"model": "fake-chat", "messages": CHAT}),
        ("POST", "/api/chat", bearer, {"model": "fake-chat", "messages": CHAT, "stream": False}),
        ("POST", "/api/generate", bearer, {"model": "nope", "prompt": "a"}),
        ("GET", "/api/tags", bearer, None),
        ("POST", "/v2/models/fake-embed/infer", bearer, {"inputs": "broken"}),
        ("GET", "/v2/models/fake-chat", wrong, None),
        ("GET", "/admin/keys", {"Authorization": f"Bearer {ADMIN}x"}, None),
        ("GET", "/admin/keys", {"Authorization": f"Bearer {ADMIN}"}, None),
        ("GET", "/metrics", {}, None),
    ]
    replies = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for method, path, headers, body in calls:
            content = body if isinstance(body, str) else None
            replies.append(
                http.request(method, path, headers=headers, json=None if content else body, content=content)
            )
    return replies


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_secret_leaves_the_server(tmp_path: Path, log_format: str) -> None:
    upstream = FakeUpstream().start()
    env = {
        "HEARTH_MODELS": _models(upstream), "HEARTH_ADMIN_KEY": ADMIN, "SWEEP_UPSTREAM_KEY": UPSTREAM_KEY,
        "HEARTH_LOG_FORMAT": log_format, "HEARTH_LOG_LEVEL": "debug",
    }  # fmt: skip
    try:
        with LiveServer(tmp_path / "data", env=env) as server:
            key = server.create_key(ADMIN, "sweep")
            replies = _traffic(server.url, key)
            upstream.mode = "500"  # an upstream failure's message must not carry its key
            replies += _traffic(server.url, key)[5:6]
            upstream.mode = "429"
            replies += _traffic(server.url, key)[5:6]
        logs = server.logs()
    finally:
        upstream.stop()
    assert any(f"Bearer {UPSTREAM_KEY}" in str(headers) for _, _, headers in upstream.requests), "it was sent"
    assert {r.status_code for r in replies} >= {200, 400, 401, 404}, [r.status_code for r in replies]
    seen = [r.text + json.dumps(dict(r.headers)) for r in replies]
    for secret in (key, key[3:], ADMIN, UPSTREAM_KEY):
        assert not any(secret in text for text in seen), f"a secret in an answer: {secret[:6]}..."
        assert secret not in logs, f"a secret in the {log_format} log: {secret[:6]}..."
