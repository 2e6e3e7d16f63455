from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from hearth.store.connection import create_db_engine, is_postgresql, is_sqlite, sqlite_path
from hearth.store.tables import ApiKey


def test_sqlite_engine_creates_dir_and_sets_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'hearth.db'}"
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
        assert (tmp_path / "a" / "b").is_dir()
    finally:
        engine.dispose()


def test_url_helpers() -> None:
    assert is_sqlite("sqlite:///x.db") and not is_postgresql("sqlite:///x.db")
    assert is_postgresql("postgresql+psycopg://u@h/db")
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite:////tmp/x.db") == Path("/tmp/x.db")


def test_postgres_engine_options() -> None:
    engine = create_db_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert engine.pool._pre_ping
    assert engine.pool.size() == 10  # type: ignore[attr-defined]
    engine.dispose()


def test_datetimes_come_back_aware_utc(engine: Engine, sessions: sessionmaker[Session]) -> None:
    # An aware non-UTC time and a naive (taken as UTC) one both round-trip as aware UTC.
    plus2 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with sessions() as session:
        session.add(ApiKey(name="a", prefix="hk-a", secret_hash="a" * 64, created_at=plus2))
        session.add(ApiKey(name="b", prefix="hk-b", secret_hash="b" * 64, created_at=datetime(2025, 3, 1)))
        session.commit()
    with sessions() as session:
        rows = {k.name: k.created_at for k in session.scalars(select(ApiKey))}
    assert rows["a"] == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert rows["a"].tzinfo is UTC
    assert rows["b"] == datetime(2025, 3, 1, tzinfo=UTC)


def test_in_memory_sqlite_is_shared_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = create_db_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))

    def read() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT x FROM t")).scalar_one())

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(read).result() == 1
    engine.dispose()
