from __future__ import annotations

import random
import statistics
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.orm import Session, sessionmaker

from hearth.store.connection import one_snapshot
from hearth.store.keys import KeyStore
from hearth.store.tables import UsageRecord
from hearth.store.usage import DailyUsage, month_start, tokens_used_since, usage_summary
from hearth.store.usage_event import UsageEvent
from hearth.store.usage_recent import hours_today, recent_requests

DAY = datetime(2025, 4, 10, tzinfo=UTC)


def _add(sessions: sessionmaker[Session], events: list[UsageEvent]) -> None:
    with sessions() as session:
        session.execute(insert(UsageRecord), [e.as_row() for e in events])
        session.commit()


def _ev(
    key: int | None, model: str, when: datetime, latency: float, status: int = 200, **kw: Any
) -> UsageEvent:
    return UsageEvent(
        request_id="r",
        model=model,
        route="/v1/x",
        key_id=key,
        latency_ms=latency,
        status_code=status,
        created_at=when,
        **kw,
    )


@pytest.fixture
def dataset(keys: KeyStore, sessions: sessionmaker[Session]) -> tuple[int, int]:
    a = keys.create("a")[0].id
    b = keys.create("b")[0].id
    plus2 = timezone(timedelta(hours=2))
    _add(
        sessions,
        [
            _ev(
                a,
                "chat",
                DAY - timedelta(days=2) + timedelta(hours=10),
                100,
                prompt_tokens=10,
                completion_tokens=20,
            ),
            # 23:59:59 UTC on day -2, given in +02:00 (already day -1 there): must count for day -2.
            _ev(
                a,
                "chat",
                (DAY - timedelta(seconds=1 + 86400)).astimezone(plus2),
                200,
                prompt_tokens=5,
                completion_tokens=5,
            ),
            _ev(a, "embed", DAY - timedelta(days=1), 50, prompt_tokens=7),
            _ev(
                a,
                "chat",
                DAY - timedelta(hours=12),
                400,
                status=500,
                prompt_tokens=1,
                error_type="server_error",
            ),
            _ev(a, "vision", DAY + timedelta(hours=8), 300, images=2),
            _ev(
                b, "chat", DAY + timedelta(hours=9), 10, status=429, prompt_tokens=100, completion_tokens=100
            ),
            _ev(None, "chat", DAY - timedelta(days=10), 1, prompt_tokens=1000),
        ],
    )
    return a, b


def _non_utc_session(session: Session) -> None:
    # Day buckets must be UTC whatever the connection's time zone is.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))


def test_per_key_summary(sessions: sessionmaker[Session], dataset: tuple[int, int]) -> None:
    a, _ = dataset
    with sessions() as session:
        _non_utc_session(session)
        s = usage_summary(session, key_id=a)
    assert (s.requests, s.prompt_tokens, s.completion_tokens, s.total_tokens, s.images) == (5, 23, 25, 48, 2)
    assert s.errors == 1 and s.success_rate == pytest.approx(0.8)
    assert s.avg_latency_ms == pytest.approx(210.0)
    assert s.p95_latency_ms == pytest.approx(380.0)  # [50,100,200,300,400] at rank 3.8
    assert s.days == (
        DailyUsage(date(2025, 4, 8), 2, 40),
        DailyUsage(date(2025, 4, 9), 2, 8),
        DailyUsage(date(2025, 4, 10), 1, 0),
    )
    assert [(m.model, m.requests, m.total_tokens, m.images) for m in s.models] == [
        ("chat", 3, 41, 0),
        ("embed", 1, 7, 0),
        ("vision", 1, 0, 2),
    ]
    data = s.to_dict()
    assert data["days"][0] == {"date": "2025-04-08", "requests": 2, "total_tokens": 40}
    assert data["models"][0]["model"] == "chat"


def test_window_and_all_keys(sessions: sessionmaker[Session], dataset: tuple[int, int]) -> None:
    with sessions() as session:
        everything = usage_summary(session)
        window = usage_summary(session, since=DAY - timedelta(days=1), until=DAY + timedelta(hours=9))
    assert everything.requests == 7 and everything.total_tokens == 48 + 200 + 1000
    # [since, until): the embed row at exactly `since` is in, b's row at exactly `until` is out.
    assert window.requests == 3
    assert {m.model for m in window.models} == {"embed", "chat", "vision"}
    assert window.success_rate == pytest.approx(2 / 3)


def test_tokens_used_since(sessions: sessionmaker[Session], dataset: tuple[int, int]) -> None:
    a, b = dataset
    with sessions() as session:
        assert tokens_used_since(session, a, DAY - timedelta(days=1)) == 8
        assert tokens_used_since(session, a, DAY - timedelta(days=30)) == 48
        assert tokens_used_since(session, b, DAY) == 200
        assert tokens_used_since(session, b, DAY + timedelta(days=1)) == 0
        assert tokens_used_since(session, 12345, DAY) == 0


def test_empty_summary(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        s = usage_summary(session, key_id=1)
    assert s.requests == 0 and s.total_tokens == 0
    assert s.success_rate is None and s.avg_latency_ms is None and s.p95_latency_ms is None
    assert s.models == () and s.days == ()


@pytest.mark.parametrize("n", [1, 2, 20, 101])
def test_p95_matches_linear_interpolation(sessions: sessionmaker[Session], n: int) -> None:
    rng = random.Random(n)
    latencies = [round(rng.uniform(1, 1000), 3) for _ in range(n)]
    _add(sessions, [_ev(None, "m", DAY, lat) for lat in latencies])
    expected = latencies[0] if n == 1 else statistics.quantiles(latencies, n=20, method="inclusive")[-1]
    with sessions() as session:
        assert usage_summary(session).p95_latency_ms == pytest.approx(expected)


def test_month_start() -> None:
    assert month_start(datetime(2025, 4, 30, 23, 0, tzinfo=timezone(timedelta(hours=-5)))) == datetime(
        2025, 5, 1, tzinfo=UTC
    )
    assert month_start(DAY) == datetime(2025, 4, 1, tzinfo=UTC)


def test_recent_requests_and_todays_hours(sessions: sessionmaker[Session], dataset: tuple[int, int]) -> None:
    a, b = dataset
    now = DAY + timedelta(hours=9, minutes=30)
    with sessions() as session:
        _non_utc_session(session)
        recent = recent_requests(session, a, 3)
        hours = hours_today(session, a, now)
        others = hours_today(session, b, now)
    assert [r["model"] for r in recent] == ["vision", "chat", "embed"]  # newest first
    assert recent[1]["status"] == 500 and recent[1]["error"] == "server_error"
    assert recent[0]["created_at"] == (DAY + timedelta(hours=8)).isoformat()
    assert [h["hour"] for h in hours] == list(range(10))  # midnight to now (09:30 UTC)
    assert hours[8]["requests"] == 1 and sum(h["requests"] for h in hours) == 1
    assert others[9] == {"hour": 9, "requests": 1, "total_tokens": 200, "errors": 1}


def test_one_snapshot_keeps_a_report_whole_while_the_ledger_commits(sessions: sessionmaker[Session]) -> None:
    """The container test once read totals before a row landed and the per-model rows after it:
    every query of one report must see the same rows, on both databases."""
    _add(sessions, [_ev(None, "chat", DAY, 10, prompt_tokens=1)])
    with sessions() as report:
        one_snapshot(report)
        first = usage_summary(report)
        _add(sessions, [_ev(None, "classifier", DAY, 10, images=1)])  # lands mid-report
        second = usage_summary(report)
    assert first.requests == second.requests == 1
    assert [m.model for m in second.models] == ["chat"] and second.images == 0
    with sessions() as later:
        assert usage_summary(later).images == 1
