"""The usage queries stay fast on a million-row ledger, on both backends, through the indexes.

Rows are generated inside the database (generate_series / a recursive CTE), so loading a
million takes seconds: 50 keys, 5 models, one row every 8.64 s over the last 100 days.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import AddConstraint, DropConstraint

from hearth.store.connection import create_db_engine, session_factory
from hearth.store.migrate import upgrade
from hearth.store.tables import Base
from hearth.store.usage import tokens_used_since, usage_summary

ROWS = 1_000_000
KEYS = 50
STEP_S = 8.64  # 1M rows x 8.64 s = 100 days
KEY = 7  # rows with g % 50 == 6
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.services),
]

COLUMNS = (
    "request_id, key_id, key_name, model, route, prompt_tokens, completion_tokens, total_tokens, "
    "cached_tokens, images, latency_ms, ttft_ms, status_code, error_type, stream, created_at"
)
VALUES = (
    "'r' || g, g % 50 + 1, 'key-' || (g % 50 + 1), 'model-' || (g % 5), '/v1/chat/completions', "
    "g % 100, g % 50, g % 100 + g % 50, 0, 0, (g % 997) + 0.5, NULL, "
    "CASE WHEN g % 37 = 0 THEN 500 ELSE 200 END, NULL, {false}, {created_at}"
)
PG_LOAD = [
    "INSERT INTO api_keys (name, prefix, secret_hash, created_at) "
    "SELECT 'key-' || g, 'hk-x', md5(g::text) || md5((-g)::text), :now FROM generate_series(1, 50) g",
    f"INSERT INTO usage_records ({COLUMNS}) SELECT "
    + VALUES.format(false="false", created_at="CAST(:now AS timestamptz) - g * interval '8.64 seconds'")
    + f" FROM generate_series(1, {ROWS}) g",
]
TABLE = Base.metadata.tables["usage_records"]
SQLITE_SEQ = "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) "
SQLITE_LOAD = [
    "INSERT INTO api_keys (name, prefix, secret_hash, created_at) "
    + SQLITE_SEQ.format(n=KEYS)
    + "SELECT 'key-' || g, 'hk-x', printf('%064d', g), '2025-01-01 00:00:00.000000' FROM s",
    # Same text format SQLAlchemy writes: "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC).
    f"INSERT INTO usage_records ({COLUMNS}) "
    + SQLITE_SEQ.format(n=ROWS)
    + "SELECT "
    + VALUES.format(
        false="0",
        created_at=f"strftime('%Y-%m-%d %H:%M:%S', :epoch - g * {STEP_S}, 'unixepoch') || '.000000'",
    )
    + " FROM s",
]


@dataclass
class BigLedger:
    backend: str
    engine: Engine
    now: datetime
    load_s: float


@pytest.fixture(scope="module", params=BACKENDS)
def big(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigLedger]:
    backend = str(request.param)
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'hearth.db'}"
    else:
        make: Callable[[], str] = request.getfixturevalue("pg_schema")
        url = make()
    upgrade(url)
    engine = create_db_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    start = time.perf_counter()
    postgres = backend == "postgresql"
    (fk,) = TABLE.foreign_key_constraints
    with engine.begin() as conn:
        # Bulk-load practice: building indexes (and checking the FK) once afterwards is ~3x
        # faster than maintaining them row by row. The definitions are the migrated ones.
        for index in TABLE.indexes:
            index.drop(conn)
        if postgres:
            conn.execute(DropConstraint(fk))
        for sql in PG_LOAD if postgres else SQLITE_LOAD:
            conn.execute(text(sql), {"now": now, "epoch": int(now.timestamp())})
        for index in TABLE.indexes:
            index.create(conn)
        if postgres:
            conn.execute(AddConstraint(fk))
            conn.execute(text("ANALYZE usage_records"))
    yield BigLedger(backend, engine, now, time.perf_counter() - start)
    engine.dispose()


class Captured:
    def __init__(self, engine: Engine) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        self.statements.append((statement, params))

    def __enter__(self) -> Captured:
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)


def _plans(big: BigLedger, statements: list[tuple[str, Any]]) -> list[str]:
    prefix = "EXPLAIN " if big.backend == "postgresql" else "EXPLAIN QUERY PLAN "
    plans = []
    with big.engine.connect() as conn:
        for statement, params in statements:
            rows = conn.exec_driver_sql(prefix + statement, params).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


def _timed(fn: Callable[[Session], Any], big: BigLedger) -> tuple[Any, float]:
    with session_factory(big.engine)() as session:
        start = time.perf_counter()
        result = fn(session)
        return result, time.perf_counter() - start


def test_per_key_month_summary_under_a_second(big: BigLedger, capsys: pytest.CaptureFixture[str]) -> None:
    since = big.now - timedelta(days=30)
    window = range(KEY - 1, int(30 * 86400 / STEP_S) + 1, KEYS)  # the g values of KEY's rows

    with Captured(big.engine) as captured:
        summary, summary_s = _timed(lambda s: usage_summary(s, key_id=KEY, since=since), big)
    assert summary_s < 1.0, f"per-key summary took {summary_s:.3f}s"
    assert summary.requests == len(window) == 6000
    assert summary.total_tokens == sum(g % 100 + g % 50 for g in window)
    assert summary.errors == sum(1 for g in window if g % 37 == 0)
    assert len(summary.models) == 1 and 30 <= len(summary.days) <= 31
    assert summary.p95_latency_ms is not None and 900 < summary.p95_latency_ms < 997

    for plan in _plans(big, captured.statements):
        assert "ix_usage_records_key_created" in plan, plan
        assert "Seq Scan" not in plan and "SCAN usage_records\n" not in plan + "\n", plan

    used, budget_s = _timed(lambda s: tokens_used_since(s, KEY, since), big)
    assert used == summary.total_tokens
    assert budget_s < 0.5

    overall, overall_s = _timed(lambda s: usage_summary(s, since=since), big)
    assert overall.requests == 300_000
    with capsys.disabled():
        print(
            f"\n[{big.backend}] load {ROWS:,} rows {big.load_s:.1f}s | per-key 30-day summary "
            f"{summary_s * 1000:.1f} ms | tokens_used_since {budget_s * 1000:.1f} ms | "
            f"all-keys 30-day summary (300k rows) {overall_s * 1000:.0f} ms"
        )
