"""Every error path of the Anthropic family in Anthropic's shape and status, its headers, its ledger rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.anthropic import MESSAGE, assert_error, named_events
from tests.helpers.apps import fake_settings, wait_ready

ADMIN = "admin-secret-anthropic"


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    app = build_app(fake_settings(tmp_path, no_auth=False, admin_key=ADMIN))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def make_key(client: TestClient, name: str, **limits: Any) -> str:
    reply = client.post("/admin/keys", json={"name": name, **limits}, headers={"x-api-key": ADMIN})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["secret"])


def test_malformed_and_non_object_bodies(client: TestClient) -> None:
    bad = client.post("/v1/messages", content=b"{nope", headers={"content-type": "application/json"})
    assert "JSON" in assert_error(bad, 400, "invalid_request_error")
    assert_error(client.post("/v1/messages", json=[1, 2]), 400, "invalid_request_error")
    assert_error(
        client.post("/v1/messages/count_tokens", content=b"{", headers={"content-type": "application/json"}),
        400,
        "invalid_request_error",
    )


def test_missing_max_tokens_names_it(client: TestClient) -> None:
    body = {k: v for k, v in MESSAGE.items() if k != "max_tokens"}
    assert "max_tokens" in assert_error(client.post("/v1/messages", json=body), 400, "invalid_request_error")


def test_unknown_model_and_wrong_kind(client: TestClient) -> None:
    missing = assert_error(
        client.post("/v1/messages", json={**MESSAGE, "model": "claude-opus-4"}), 404, "not_found_error"
    )
    assert "claude-opus-4" in missing
    assert_error(
        client.post("/v1/messages/count_tokens", json={**MESSAGE, "model": "nope"}), 404, "not_found_error"
    )
    assert_error(
        client.post("/v1/messages", json={**MESSAGE, "model": "fake-embed"}), 400, "invalid_request_error"
    )


@pytest.mark.parametrize("stream", [False, True])
def test_over_long_prompt_and_max_tokens(client: TestClient, stream: bool) -> None:
    long_prompt = {**MESSAGE, "stream": stream, "messages": [{"role": "user", "content": "word " * 3000}]}
    assert "context" in assert_error(
        client.post("/v1/messages", json=long_prompt), 400, "invalid_request_error"
    )
    too_many = {**MESSAGE, "stream": stream, "max_tokens": 100_000}
    assert "max_tokens" in assert_error(
        client.post("/v1/messages", json=too_many), 400, "invalid_request_error"
    )


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.post("/v1/messages/nonexistent", json={}), 404, "not_found_error")
    assert_error(client.get("/v1/messages"), 405, "invalid_request_error")


def test_body_too_large_is_413_request_too_large(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path, max_body_bytes=2048))
    with TestClient(app) as client:
        wait_ready(client)
        big = {**MESSAGE, "messages": [{"role": "user", "content": "x" * 5000}]}
        assert "too large" in assert_error(client.post("/v1/messages", json=big), 413, "request_too_large")


def test_mid_stream_failure_sends_an_error_event_and_ends(client: TestClient) -> None:
    body = {
        **MESSAGE,
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "FAIL_MIDSTREAM"}],
    }
    with client.stream("POST", "/v1/messages", json=body) as reply:
        assert reply.status_code == 200
        events = named_events(reply.read().decode())
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert "content_block_delta" in names and "message_stop" not in names
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": events[-1][1]["error"]["message"]}},
    )
    # Without streaming the same failure is a 500 api_error.
    assert_error(client.post("/v1/messages", json={**body, "stream": False}), 500, "api_error")


@pytest.mark.parametrize("stream", [False, True])
def test_full_queue_is_529_overloaded_with_retry_after(tmp_path: Path, stream: bool) -> None:
    app = build_app(fake_settings(tmp_path, chat={"slots": 1, "max_queue": 1}))
    with TestClient(app) as client:
        wait_ready(client)
        engine = app.state.registry.get("fake-chat", object)
        engine.token_delay_s = 0.05
        slow = {**MESSAGE, "max_tokens": 40}
        threads = [
            threading.Thread(target=client.post, args=("/v1/messages",), kwargs={"json": slow})
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while (engine.running, engine.waiting) != (1, 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        reply = client.post("/v1/messages", json={**MESSAGE, "stream": stream})
        assert "busy" in assert_error(reply, 529, "overloaded_error")
        assert int(reply.headers["retry-after"]) >= 1
        for t in threads:
            t.join()


def test_keys_by_x_api_key_or_bearer(keyed: TestClient) -> None:
    assert "API key" in assert_error(keyed.post("/v1/messages", json=MESSAGE), 401, "authentication_error")
    assert_error(
        keyed.post("/v1/messages", json=MESSAGE, headers={"x-api-key": "hk-wrong"}),
        401,
        "authentication_error",
    )
    secret = make_key(keyed, "both")
    assert keyed.post("/v1/messages", json=MESSAGE, headers={"x-api-key": secret}).status_code == 200
    assert (
        keyed.post("/v1/messages", json=MESSAGE, headers={"Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
    scoped = make_key(keyed, "embed-only", models=["fake-embed"])
    assert_error(
        keyed.post("/v1/messages", json=MESSAGE, headers={"x-api-key": scoped}), 403, "permission_error"
    )


def _reset(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_rate_limit_headers_and_429(keyed: TestClient) -> None:
    secret = make_key(keyed, "limited", rpm=2, tpm=10_000)
    headers = {"x-api-key": secret}
    ok = keyed.post("/v1/messages", json=MESSAGE, headers=headers)
    assert ok.status_code == 200
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert ok.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert ok.headers["anthropic-ratelimit-tokens-limit"] == "10000"
    assert int(ok.headers["anthropic-ratelimit-tokens-remaining"]) < 10_000
    now = datetime.now(UTC)
    for name in ("requests", "tokens"):
        assert 0 <= (_reset(ok.headers[f"anthropic-ratelimit-{name}-reset"]) - now).total_seconds() <= 61
    assert not any(h.startswith("x-ratelimit") for h in ok.headers)
    keyed.post("/v1/messages", json=MESSAGE, headers=headers)
    refused = keyed.post("/v1/messages", json=MESSAGE, headers=headers)
    assert "rate limit" in assert_error(refused, 429, "rate_limit_error")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_used_up_quota_is_429(keyed: TestClient) -> None:
    secret = make_key(keyed, "budget", monthly_tokens=8)
    reply = keyed.post("/v1/messages", json=MESSAGE, headers={"x-api-key": secret})
    assert "budget" in assert_error(reply, 429, "rate_limit_error")
    assert int(reply.headers["retry-after"]) >= 1


def test_usage_rows_say_anthropic(keyed: TestClient) -> None:
    secret = make_key(keyed, "ledger")
    headers = {"x-api-key": secret}
    keyed.post("/v1/messages", json=MESSAGE, headers=headers)
    with keyed.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}, headers=headers) as reply:
        reply.read()
    keyed.post("/v1/messages/count_tokens", json=MESSAGE, headers=headers)
    keyed.post("/v1/messages", json={**MESSAGE, "model": "nope"}, headers=headers)
    chat = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    keyed.post("/v1/chat/completions", json=chat, headers=headers)
    database = keyed.app.state.root.database  # type: ignore[attr-defined]
    assert database.ledger.flush(10)
    with database.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))]
    summary = [(r["family"], r["route"], r["status_code"], r["stream"], r["completion_tokens"]) for r in rows]
    assert summary == [
        ("anthropic", "POST /v1/messages", 200, False, 5),
        ("anthropic", "POST /v1/messages", 200, True, 5),
        ("anthropic", "POST /v1/messages/count_tokens", 200, False, 0),
        ("anthropic", "POST /v1/messages", 404, False, 0),
        ("openai", "POST /v1/chat/completions", 200, False, 2),
    ]
    assert rows[3]["error_type"] == "model_not_found" and rows[0]["key_name"] == "ledger"
    families = keyed.get("/v1/usage", headers=headers).json()["families"]
    assert {name: f["requests"] for name, f in families.items()} == {"anthropic": 4, "openai": 1}
    assert families["anthropic"]["errors"] == 1
