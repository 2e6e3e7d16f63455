"""Anthropic's Message Batches through the official SDK, on fake engines: create, retrieve
until it ends, results by custom_id (succeeded and errored), cancel (canceled results), list,
delete, another key's batches absent, and one usage row per request in Anthropic's family."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import MakeKey
from tests.helpers.ledger import flush_ledger


def sdk(client: TestClient, secret: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url="http://testserver", api_key=secret, http_client=client, max_retries=0
    )


def request(custom_id: str, model: str = "fake-chat", max_tokens: int = 8) -> dict[str, Any]:
    params = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": f"hi {custom_id}"}],
    }
    return {"custom_id": custom_id, "params": params}


def ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.1)
    raise AssertionError(client.messages.batches.retrieve(batch_id))


def test_a_batch_of_messages_with_an_error(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("anthropic-batch"))
    batch = client.messages.batches.create(
        requests=[request("a"), request("b"), request("missing", model="no-such-model")]  # type: ignore[list-item]
    )
    assert (
        batch.type == "message_batch"
        and batch.processing_status == "in_progress"
        and batch.results_url is None
    )
    done = ended(client, batch.id)
    assert (done.request_counts.succeeded, done.request_counts.errored) == (2, 1) and done.ended_at
    assert done.results_url and done.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["a"].type == "succeeded" and results["a"].message.content[0].text  # type: ignore[union-attr]
    assert results["a"].message.role == "assistant"  # type: ignore[union-attr]
    assert results["missing"].type == "errored"
    assert results["missing"].error.error.type == "not_found_error"  # type: ignore[union-attr]
    flush_ledger(gw)
    with gw.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            sa.text("SELECT custom_id, family FROM usage_records WHERE batch_id = :b"), {"b": batch.id}
        ).all()
    assert sorted(rows) == [("a", "anthropic"), ("b", "anthropic"), ("missing", "anthropic")]
    assert [b.id for b in client.messages.batches.list()] == [batch.id]
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_cancel_and_strangers(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("anthropic-cancel"))
    batch = client.messages.batches.create(requests=[request(f"r{i}", max_tokens=200) for i in range(40)])  # type: ignore[misc]
    with pytest.raises(anthropic.BadRequestError, match="has not ended"):
        client.messages.batches.delete(batch.id)
    cancelled = client.messages.batches.cancel(batch.id)
    assert cancelled.processing_status in ("canceling", "ended") and cancelled.cancel_initiated_at
    done = ended(client, batch.id)
    counts = done.request_counts
    assert counts.succeeded + counts.canceled + counts.errored == 40 and counts.canceled > 0
    types = {r.result.type for r in client.messages.batches.results(batch.id)}
    assert "canceled" in types
    stranger = sdk(gw, make_key("anthropic-stranger"))
    with pytest.raises(anthropic.NotFoundError):
        stranger.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[request("dup"), request("dup")])  # type: ignore[list-item]


def test_a_batch_over_the_keys_enqueued_token_limit_is_refused_with_429(
    gw: TestClient, make_key: MakeKey
) -> None:
    client = sdk(gw, make_key("anthropic-queued", batch_queued_tokens=200))
    many = [request(f"r{i}") for i in range(40)]  # about 15 tokens each: 600 in all
    with pytest.raises(anthropic.RateLimitError, match="Enqueued token limit"):
        client.messages.batches.create(requests=many)  # type: ignore[arg-type]
    assert client.messages.batches.list().data == []  # nothing was left behind
    batch = client.messages.batches.create(requests=many[:2])  # type: ignore[arg-type]
    assert ended(client, batch.id).request_counts.succeeded == 2
