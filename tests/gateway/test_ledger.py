"""Every request writes one ledger row, including streams, failures and 4xx; usage reads it back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.helpers.keys import MakeKey, admin_headers, bearer
from tests.helpers.ledger import flush_ledger

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def rows(client: TestClient) -> list[dict[str, Any]]:
    flush_ledger(client)
    with client.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        result = conn.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))
        return [dict(r._mapping) for r in result]


def test_rows_for_success_stream_and_errors(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("ledger")
    ok = gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
    with gw.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=bearer(secret)
    ) as reply:
        reply.read()
    gw.post("/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=bearer(secret))
    gw.post("/v1/chat/completions", json={**CHAT, "max_tokens": 99999}, headers=bearer(secret))
    gw.post("/v1/embeddings", json={"model": "fake-embed", "input": ["a b c"]}, headers=bearer(secret))
    failing = {
        **CHAT,
        "messages": [{"role": "user", "content": "FAIL_MIDSTREAM"}],
        "stream": True,
        "max_tokens": 9,
    }
    with gw.stream("POST", "/v1/chat/completions", json=failing, headers=bearer(secret)) as reply:
        reply.read()
    gw.post("/v1/chat/completions", json=CHAT)  # no key: a 401, recorded without a key

    recorded = rows(gw)
    assert len(recorded) == 7
    first, stream, missing, too_long, embed, failed, anonymous = recorded
    assert first["request_id"] == ok.headers["x-request-id"]
    assert (first["key_name"], first["model"], first["route"]) == (
        "ledger",
        "fake-chat",
        "POST /v1/chat/completions",
    )
    assert first["completion_tokens"] == 3 and first["prompt_tokens"] > 0
    assert first["total_tokens"] == first["prompt_tokens"] + 3
    assert first["status_code"] == 200 and first["error_type"] is None
    assert first["latency_ms"] > 0 and first["ttft_ms"] is not None
    assert stream["stream"] and stream["completion_tokens"] == 3 and stream["status_code"] == 200
    assert missing["status_code"] == 404 and missing["error_type"] == "model_not_found"
    assert missing["model"] == "nope"  # what was asked for, so operators see it
    assert too_long["status_code"] == 400 and too_long["error_type"] == "context_length_exceeded"
    assert embed["model"] == "fake-embed" and embed["prompt_tokens"] == 5
    assert failed["error_type"] == "engine_failure" and failed["completion_tokens"] == 2
    assert failed["status_code"] == 500  # the 200 was sent, but the stream failed
    assert anonymous["status_code"] == 401 and anonymous["key_id"] is None


def test_usage_routes_and_admin_usage(gw: TestClient, make_key: MakeKey) -> None:
    alice, bob = make_key("alice"), make_key("bob")
    for _ in range(3):
        gw.post("/v1/chat/completions", json=CHAT, headers=bearer(alice))
    gw.post("/v1/chat/completions", json={**CHAT, "model": "missing"}, headers=bearer(alice))
    gw.post("/v1/embeddings", json={"model": "fake-embed", "input": "x"}, headers=bearer(bob))
    flush_ledger(gw)
    mine = gw.get("/v1/usage", headers=bearer(alice)).json()
    assert mine["requests"] == 4
    assert mine["completion_tokens"] == 9
    assert mine["success_rate"] == 0.75
    assert {m["model"]: m["requests"] for m in mine["models"]} == {"fake-chat": 3, "missing": 1}
    assert len(mine["days"]) == 1 and mine["days"][0]["requests"] == 4
    assert mine["avg_latency_ms"] > 0 and mine["p95_latency_ms"] > 0
    everyone = gw.get("/admin/usage", headers=admin_headers()).json()
    assert everyone["requests"] >= 5
    only_bob = gw.get("/admin/usage", params={"key": "bob"}, headers=admin_headers()).json()
    assert only_bob["requests"] == 1 and only_bob["models"][0]["model"] == "fake-embed"
