"""A key's recent activity, for the usage page: its latest requests one by one, and today's
requests, tokens and errors hour by hour (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session

from hearth.store.tables import UsageRecord as U

_RECENT_COLUMNS = (
    U.request_id, U.created_at, U.route, U.family, U.model, U.status_code, U.error_type,
    U.prompt_tokens, U.completion_tokens, U.latency_ms, U.ttft_ms, U.stream,
)  # fmt: skip


def recent_requests(session: Session, key_id: int, limit: int) -> list[dict[str, Any]]:
    """The key's latest ``limit`` requests, newest first."""
    rows = session.execute(
        select(*_RECENT_COLUMNS)
        .where(U.key_id == key_id)
        .order_by(U.created_at.desc(), U.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "request_id": r.request_id,
            "created_at": _utc(r.created_at).isoformat(),
            "route": r.route,
            "family": r.family,
            "model": r.model,
            "status": r.status_code,
            "error": r.error_type,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "latency_ms": r.latency_ms,
            "ttft_ms": r.ttft_ms,
            "stream": r.stream,
        }
        for r in rows
    ]


def hours_today(session: Session, key_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Today's (UTC) requests, tokens and errors per hour, every hour up to now included."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    postgres = session.get_bind().dialect.name == "postgresql"
    # PostgreSQL: timestamptz at UTC; SQLite stores naive UTC text "YYYY-MM-DD HH:MM:SS".
    hour = (
        func.extract("hour", func.timezone("UTC", U.created_at))
        if postgres
        else cast(func.strftime("%H", U.created_at), Integer)
    )
    rows = session.execute(
        select(
            hour,
            func.count(),
            func.coalesce(func.sum(U.total_tokens), 0),
            func.coalesce(func.sum(case((U.status_code >= 400, 1), else_=0)), 0),
        )
        .where(U.key_id == key_id, U.created_at >= midnight)
        .group_by(hour)
    ).all()
    found = {int(h): (int(n), int(tokens), int(errors)) for h, n, tokens, errors in rows}
    hours = []
    for h in range(now.hour + 1):
        requests, tokens, errors = found.get(h, (0, 0, 0))
        hours.append({"hour": h, "requests": requests, "total_tokens": tokens, "errors": errors})
    return hours


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
