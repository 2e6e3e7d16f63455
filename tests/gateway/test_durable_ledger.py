"""HA mode (HEARTH_LEDGER_COMMIT_WAIT): a usage row is committed before its answer goes out, and a load balancer's retry of the
same client request (same trusted id) is recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
LB = "x-hearth-lb-id"


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[TestClient]:
    app = build_app(fake_settings(tmp_path, ledger_commit_wait=True, trusted_request_id_header=LB))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def committed(client: TestClient) -> list[dict[str, Any]]:
    """Rows in the database right now: no flush, so only what was committed already."""
    with client.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))]


def test_the_row_is_committed_before_the_answer_arrives(durable: TestClient) -> None:
    reply = durable.post("/v1/chat/completions", json=CHAT)
    assert reply.status_code == 200
    assert [r["request_id"] for r in committed(durable)] == [reply.headers["x-request-id"]]
    with durable.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
        body = stream.read().decode()
    assert body.rstrip().endswith("data: [DONE]")
    rows = committed(durable)
    assert len(rows) == 2 and rows[1]["stream"] and rows[1]["completion_tokens"] == 3
    embed = durable.post("/v1/embeddings", json={"model": "fake-embed", "input": "a b"})
    assert embed.status_code == 200 and len(committed(durable)) == 3


def test_a_retried_request_is_recorded_once(durable: TestClient) -> None:
    for _ in range(2):  # the load balancer sends the same client request to two replicas
        assert durable.post("/v1/chat/completions", json=CHAT, headers={LB: "lb-42"}).status_code == 200
    durable.post("/v1/chat/completions", json=CHAT, headers={LB: "lb-43"})
    rows = committed(durable)
    assert [r["dedupe_key"] for r in rows] == ["lb-42", "lb-43"]
    assert durable.app.state.root.database.ledger.deduplicated == 1  # type: ignore[attr-defined]


def test_without_the_setting_the_header_is_not_trusted(client: TestClient) -> None:
    for _ in range(2):
        client.post("/v1/chat/completions", json=CHAT, headers={LB: "lb-42"})
    assert client.app.state.root.database.ledger.flush(10)  # type: ignore[attr-defined]
    with client.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        keys = [r[0] for r in conn.execute(sa.text("SELECT dedupe_key FROM usage_records"))]
    assert keys == [None, None]
