"""Engines and sessions for SQLite (the default) and PostgreSQL (for scale).

The store is synchronous SQLAlchemy: callers on the event loop run it in a worker thread
(``anyio.to_thread`` / ``run_in_threadpool``), and the ledger writer owns its own thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

# Long enough to ride out a ledger flush or a migration holding the write lock.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgresql(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def sqlite_path(url: str | URL) -> Path | None:
    """The database file of a SQLite URL, or ``None`` for in-memory databases."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).expanduser()


def create_db_engine(url: str | URL, *, echo: bool = False, **kwargs: Any) -> Engine:
    """Build an engine tuned for the backend; ``kwargs`` override the defaults."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo, **kwargs)
    options: dict[str, Any] = {
        # Drops connections a restarted/failed-over server closed, instead of failing a request.
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 20,
        "pool_timeout": 10,
        # Below typical load-balancer/pgbouncer idle cut-offs.
        "pool_recycle": 1800,
    }
    if parsed.get_backend_name() == "postgresql":
        defaults = {
            "connect_timeout": 5,
            # How `hearth db restore` (store/backup.py) sees that servers still use the database.
            "application_name": "hearth",
        }
        options["connect_args"] = {k: v for k, v in defaults.items() if k not in parsed.query}
    options.update(kwargs)
    return create_engine(parsed, echo=echo, **options)


def _sqlite_engine(url: URL, *, echo: bool, **kwargs: Any) -> Engine:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {
        # Sessions are used from worker threads and the ledger thread, never concurrently.
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
    }
    connect_args.update(kwargs.pop("connect_args", {}))
    if path is None:
        # In-memory: one shared connection, or every thread would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(url, echo=echo, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if path is not None:
                # WAL lets readers (usage queries) run while the ledger writes.
                cursor.execute("PRAGMA journal_mode=WAL")
            # Safe with WAL (only the last commits can be lost on power failure) and much faster.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: views are built after commit, outside the session.
    return sessionmaker(bind=engine, expire_on_commit=False)


def one_snapshot(session: Session) -> None:
    """Make the session's reads from here on see one snapshot of the database, so that a report
    built from several queries adds up while the ledger writes. Call it before the first query.

    PostgreSQL's default (read committed) gives each statement its own snapshot; pysqlite opens a
    transaction only before a write, so each SELECT of a read-only session is its own too.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return
    connection = session.connection()
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN")


def rowcount(result: object) -> int:
    """The rows a DML statement touched: its result is a CursorResult, whose ``rowcount`` the
    generic Result type does not declare."""
    return int(getattr(result, "rowcount", 0))
