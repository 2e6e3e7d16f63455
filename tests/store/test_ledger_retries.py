"""A request a load balancer retried elsewhere keeps one usage row: the answer the client got.

Behind the shipped nginx/HAProxy configs a replica that answers 503 (loading, not ready) has its
request sent on to another replica, with the same dedupe key (the balancer's request id).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hearth.store.connection import create_db_engine
from hearth.store.ledger import LedgerWriter
from hearth.store.tables import UsageRecord
from hearth.store.usage_event import UsageEvent


def _event(status: int, dedupe: str, tokens: int) -> UsageEvent:
    return UsageEvent(
        request_id=f"client-{dedupe}",
        model="m",
        route="/v1/chat/completions",
        prompt_tokens=tokens,
        completion_tokens=tokens,
        status_code=status,
        error_type="not_ready" if status == 503 else None,
        dedupe_key=dedupe,
    )


def _rows(sessions: sessionmaker[Session], dedupe: str) -> list[tuple[int, int]]:
    with sessions() as session:
        rows = session.execute(
            select(UsageRecord.status_code, UsageRecord.prompt_tokens).where(UsageRecord.dedupe_key == dedupe)
        ).all()
    return [(int(s), int(t)) for s, t in rows]


def _write(db_url: str, *events: UsageEvent) -> LedgerWriter:
    engine = create_db_engine(db_url)
    writer = LedgerWriter(engine, batch_size=1, interval_s=0.01)
    for event in events:
        assert writer.record_durable(event).result(10)
    writer.close()
    engine.dispose()
    return writer


def test_the_answer_replaces_a_refusal_and_never_the_reverse(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    # The refusal first, then the retry's answer: the answer takes its place.
    writer = _write(db_url, _event(503, "lb-1", 0), _event(200, "lb-1", 7))
    assert _rows(sessions, "lb-1") == [(200, 7)]
    assert writer.deduplicated == 1
    # The answer first (the refusing replica wrote late): the refusal is dropped.
    _write(db_url, _event(200, "lb-2", 5), _event(503, "lb-2", 0))
    assert _rows(sessions, "lb-2") == [(200, 5)]
    # Two answers (the first replica died after committing, before the client saw it): the first stays.
    _write(db_url, _event(200, "lb-3", 1), _event(200, "lb-3", 2))
    assert _rows(sessions, "lb-3") == [(200, 1)]
