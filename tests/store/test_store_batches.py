"""A key's enqueued-token limit over its unfinished batches, on both databases: unfinished
batches count, ended ones free their tokens, and an over-limit batch is created ``failed`` (or
refused, for Anthropic's family) without counting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hearth.errors import RateLimited
from hearth.store.batches import BatchStore, FinishedLine
from hearth.store.keys import KeyStore
from hearth.store.tables import UsageRecord, utcnow
from hearth.store.usage_event import UsageEvent

DAY = timedelta(hours=24)


def test_unfinished_batches_hold_their_tokens_until_they_end(
    keys: KeyStore, sessions: sessionmaker[Session]
) -> None:
    store = BatchStore(sessions)
    key = keys.create("queued", batch_queued_tokens=1000)[0]
    other = keys.create("other")[0]

    def create(tokens: int, owner: int = key.id, refuse: bool = False) -> str:
        made = store.create(owner, "/v1/embeddings", "file-x", DAY, None, queued_tokens=tokens,
                            queued_limit=1000 if owner == key.id else None, refuse_over_limit=refuse)  # fmt: skip
        return made.status

    assert create(600) == "validating"
    assert create(5000, owner=other.id) == "validating"  # another key's batches are its own
    failed = store.create(key.id, "/v1/embeddings", "file-x", DAY, None, queued_tokens=500, queued_limit=1000)
    assert failed.status == "failed" and failed.errors is not None
    assert failed.errors[0]["code"] == "token_limit_exceeded" and "1,000" in failed.errors[0]["message"]
    with pytest.raises(RateLimited, match="Enqueued token limit"):
        create(500, refuse=True)
    assert create(400) == "validating"  # the failed and refused ones hold nothing: 600 + 400 fit
    assert create(1) == "failed"

    oldest = store.claim("w1", stale_before=utcnow() - DAY)  # the first batch made: 600 tokens
    assert oldest is not None and oldest.key_id == key.id
    assert store.move(oldest.id, "w1", "completed", when="completed_at", release=True)
    assert create(600) == "validating"  # its 600 tokens were freed when it ended
    assert create(1) == "failed"


def test_only_the_holder_records_lines_and_a_line_is_billed_once(
    keys: KeyStore, sessions: sessionmaker[Session]
) -> None:
    store = BatchStore(sessions)
    key = keys.create("recorder")[0]
    made = store.create(key.id, "/v1/embeddings", "file-x", DAY, None, total=3)
    assert store.claim("w1", stale_before=utcnow() - DAY) is not None

    def line(n: int) -> FinishedLine:
        usage = UsageEvent(request_id=f"r{n}", model="m", route="POST /v1/embeddings", key_id=key.id,
                           latency_ms=1.0, status_code=200, batch_id=made.id, custom_id=f"c{n}")  # fmt: skip
        return FinishedLine(n, f"c{n}", True, {"custom_id": f"c{n}"}, usage.as_row())

    assert store.record_lines(made.id, "w1", [line(1), line(2)])
    assert store.record_lines(made.id, "w1", [line(2), line(3)])  # line 2 again: kept once
    assert not store.record_lines(made.id, "w2", [line(3)]), "w2 does not hold the batch"
    assert [n for n, _, _ in store.lines(made.id)] == [1, 2, 3]
    assert store.by_id(made.id).completed == 3  # type: ignore[union-attr]
    with sessions() as session:
        billed = session.execute(
            select(UsageRecord.custom_id)
            .where(UsageRecord.batch_id == made.id)
            .order_by(UsageRecord.custom_id)
        ).scalars()
        assert list(billed) == ["c1", "c2", "c3"]
