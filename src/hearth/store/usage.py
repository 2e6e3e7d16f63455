"""Usage queries over the ledger: summaries for ``hearth usage`` / the admin API, budget sums.

Every query filters on ``(key_id, created_at)`` or ``created_at``, which the indexes of
``usage_records`` serve; on a million-row ledger a per-key month takes milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Date, case, cast, func, select
from sqlalchemy.orm import Session

from hearth.store.tables import UsageRecord

U = UsageRecord
P95 = 0.95


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    images: int
    audio_seconds: float = 0.0
    errors: int = 0  # status >= 400


@dataclass(frozen=True, slots=True)
class GroupUsage:
    """Usage of one value of a column (an API family, a rollout variant)."""

    name: str
    requests: int
    errors: int
    total_tokens: int
    avg_latency_ms: float | None
    avg_ttft_ms: float | None
    avg_agreement: float | None = None  # shadow rows: how far their answers agreed with the live ones

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "total_tokens": self.total_tokens,
            "avg_latency_ms": self.avg_latency_ms,
            "avg_ttft_ms": self.avg_ttft_ms,
            "avg_agreement": self.avg_agreement,
        }


@dataclass(frozen=True, slots=True)
class DailyUsage:
    day: date  # UTC
    requests: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class UsageSummary:
    key_id: int | None
    since: datetime | None
    until: datetime | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    images: int
    errors: int  # status >= 400
    success_rate: float | None  # None when there were no requests
    avg_latency_ms: float | None
    p95_latency_ms: float | None  # linear interpolation, like PostgreSQL's percentile_cont
    models: tuple[ModelUsage, ...]  # most tokens first
    days: tuple[DailyUsage, ...]  # oldest first
    audio_seconds: float = 0.0
    characters: int = 0
    families: tuple[GroupUsage, ...] = ()  # by API family, most requests first
    variants: tuple[GroupUsage, ...] = ()  # by rollout variant (rows that had one)
    keys: tuple[GroupUsage, ...] = ()  # by key name: everyone's usage only (no key asked for)
    batches: tuple[GroupUsage, ...] = ()  # batch jobs' lines, by batch (apart from live requests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cached_tokens": self.cached_tokens,
            "images": self.images,
            "audio_seconds": self.audio_seconds,
            "characters": self.characters,
            "errors": self.errors,
            "success_rate": self.success_rate,
            "avg_latency_ms": self.avg_latency_ms,
            "p95_latency_ms": self.p95_latency_ms,
            "models": [
                {
                    "model": m.model,
                    "requests": m.requests,
                    "prompt_tokens": m.prompt_tokens,
                    "completion_tokens": m.completion_tokens,
                    "total_tokens": m.total_tokens,
                    "images": m.images,
                    "audio_seconds": m.audio_seconds,
                    "errors": m.errors,
                }
                for m in self.models
            ],
            "days": [
                {"date": d.day.isoformat(), "requests": d.requests, "total_tokens": d.total_tokens}
                for d in self.days
            ],
            "families": {g.name: g.to_dict() for g in self.families},
            "variants": {g.name: g.to_dict() for g in self.variants},
            "keys": {g.name: g.to_dict() for g in self.keys},
            "batches": {g.name: g.to_dict() for g in self.batches},
        }


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC on the first day of ``now``'s month: where monthly budgets reset."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def tokens_used_since(session: Session, key_id: int, since: datetime) -> int:
    """Total tokens a key used from ``since`` on (an index-only range scan)."""
    stmt = select(func.coalesce(func.sum(U.total_tokens), 0)).where(U.key_id == key_id, U.created_at >= since)
    return int(session.execute(stmt).scalar_one())


def usage_summary(
    session: Session,
    *,
    key_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> UsageSummary:
    """Totals, per-model and per-day usage for ``since <= created_at < until`` (None = open)."""
    where = _filters(key_id, since, until)
    postgres = session.get_bind().dialect.name == "postgresql"

    ok = func.coalesce(func.sum(case((U.status_code < 400, 1), else_=0)), 0)
    columns: list[Any] = [
        func.count(),
        func.coalesce(func.sum(U.prompt_tokens), 0),
        func.coalesce(func.sum(U.completion_tokens), 0),
        func.coalesce(func.sum(U.total_tokens), 0),
        func.coalesce(func.sum(U.cached_tokens), 0),
        func.coalesce(func.sum(U.images), 0),
        ok,
        func.avg(U.latency_ms),
        func.coalesce(func.sum(U.audio_seconds), 0),
        func.coalesce(func.sum(U.characters), 0),
    ]
    if postgres:
        columns.append(func.percentile_cont(P95).within_group(U.latency_ms))
    totals = session.execute(select(*columns).where(*where)).one()
    requests, prompt, completion, total, cached, images, successes, avg_latency, audio, characters = totals[
        :10
    ]
    requests = int(requests)
    p95 = totals[10] if postgres else _sqlite_percentile(session, where, requests, P95)

    model_rows = session.execute(
        select(
            U.model,
            func.count(),
            func.coalesce(func.sum(U.prompt_tokens), 0),
            func.coalesce(func.sum(U.completion_tokens), 0),
            func.coalesce(func.sum(U.total_tokens), 0),
            func.coalesce(func.sum(U.images), 0),
            func.coalesce(func.sum(U.audio_seconds), 0),
            func.coalesce(func.sum(case((U.status_code >= 400, 1), else_=0)), 0),
        )
        .where(*where)
        .group_by(U.model)
    ).all()
    models = sorted(
        (
            ModelUsage(str(m), int(r), int(p), int(c), int(t), int(i), float(a), int(e))
            for m, r, p, c, t, i, a, e in model_rows
        ),
        key=lambda m: (-m.total_tokens, -m.requests, m.model),
    )

    day = _utc_day(postgres)
    day_rows = session.execute(
        select(day, func.count(), func.coalesce(func.sum(U.total_tokens), 0))
        .where(*where)
        .group_by(day)
        .order_by(day)
    ).all()
    days = tuple(DailyUsage(_as_date(d), int(r), int(t)) for d, r, t in day_rows)

    return UsageSummary(
        families=_grouped(session, where, U.family),
        variants=_grouped(session, [*where, U.variant.is_not(None)], U.variant),
        keys=() if key_id is not None else _grouped(session, [*where, U.key_name.is_not(None)], U.key_name),
        batches=_grouped(session, [*where, U.batch_id.is_not(None)], U.batch_id),
        key_id=key_id,
        since=since,
        until=until,
        requests=requests,
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        total_tokens=int(total),
        cached_tokens=int(cached),
        images=int(images),
        audio_seconds=float(audio),
        characters=int(characters),
        errors=requests - int(successes),
        success_rate=int(successes) / requests if requests else None,
        avg_latency_ms=float(avg_latency) if avg_latency is not None else None,
        p95_latency_ms=float(p95) if p95 is not None else None,
        models=tuple(models),
        days=days,
    )


def _grouped(session: Session, where: list[ColumnElement[bool]], column: Any) -> tuple[GroupUsage, ...]:
    rows = session.execute(
        select(
            column,
            func.count(),
            func.coalesce(func.sum(case((U.status_code >= 400, 1), else_=0)), 0),
            func.coalesce(func.sum(U.total_tokens), 0),
            func.avg(U.latency_ms),
            func.avg(U.ttft_ms),
            func.avg(U.agreement),
        )
        .where(*where)
        .group_by(column)
    ).all()
    groups = (
        GroupUsage(
            str(name),
            int(n),
            int(errors),
            int(tokens),
            None if latency is None else float(latency),
            None if ttft is None else float(ttft),
            None if agreement is None else float(agreement),
        )
        for name, n, errors, tokens, latency, ttft, agreement in rows
    )
    return tuple(sorted(groups, key=lambda g: (-g.requests, g.name)))


def _filters(key_id: int | None, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if key_id is not None:
        where.append(U.key_id == key_id)
    if since is not None:
        where.append(U.created_at >= since)
    if until is not None:
        where.append(U.created_at < until)
    return where


def _utc_day(postgres: bool) -> ColumnElement[Any]:
    if postgres:
        # timestamptz -> UTC wall time -> date, whatever the session's TimeZone is.
        return cast(func.timezone("UTC", U.created_at), Date)
    # SQLite stores naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff".
    return func.date(U.created_at)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _sqlite_percentile(session: Session, where: list[ColumnElement[bool]], n: int, q: float) -> float | None:
    """percentile_cont for SQLite: read just the one or two ranked values it interpolates."""
    if n == 0:
        return None
    position = q * (n - 1)
    low = math.floor(position)
    stmt = select(U.latency_ms).where(*where).order_by(U.latency_ms).offset(low).limit(2)
    values = [float(v) for v in session.scalars(stmt)]
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return values[0] + (values[1] - values[0]) * (position - low)
