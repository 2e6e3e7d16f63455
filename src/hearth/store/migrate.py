"""Run the packaged Alembic migrations without an ``alembic.ini``.

``upgrade(url)`` is what ``hearth serve`` and ``hearth db migrate`` call before serving. Several
replicas (or uvicorn workers) may start at once, so the upgrade runs under a lock: a
PostgreSQL session advisory lock (one per schema), or an ``flock`` beside a SQLite file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select, text
from sqlalchemy.engine import URL, make_url

from hearth.store.connection import create_db_engine, sqlite_path

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Alembic's ``context`` is a process-global proxy, so two threads must never migrate at once.
_PROCESS_LOCK = threading.Lock()


def alembic_config(url: str | URL | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = make_url(url).render_as_string(hide_password=False)
        # Config values go through configparser interpolation: "%" must be doubled.
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str | URL) -> str | None:
    """The database's revision, or ``None`` before the first migration."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def is_up_to_date(url: str | URL) -> bool:
    return current_revision(url) == head_revision()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``; safe to call from many processes."""
    _run(url, lambda cfg: command.upgrade(cfg, revision))
    log.info("database migrated to %s", revision)


def downgrade(url: str | URL, revision: str = "base") -> None:
    _run(url, lambda cfg: command.downgrade(cfg, revision))


def _run(url: str | URL, action: Callable[[Config], None]) -> None:
    cfg = alembic_config(url)
    engine = create_db_engine(url)
    try:
        with _PROCESS_LOCK, _file_lock(url), engine.connect() as conn, _advisory_lock(conn):
            # Alembic runs env.py on this connection, so the lock covers the whole upgrade.
            cfg.attributes["connection"] = conn
            action(cfg)
            conn.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _advisory_lock(conn: Connection) -> Iterator[None]:
    """Serialise migrations per PostgreSQL schema; a no-op on other backends."""
    if conn.dialect.name != "postgresql":
        yield
        return
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    digest = hashlib.sha256(f"hearth.migrate:{schema}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    conn.execute(select(func.pg_advisory_lock(key)))
    # Session-level lock: it outlives this commit, so Alembic gets a connection with no
    # transaction open and manages its own.
    conn.commit()
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.execute(select(func.pg_advisory_unlock(key)))
        conn.commit()


@contextlib.contextmanager
def _file_lock(url: str | URL) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (POSIX only)."""
    path = sqlite_path(url) if make_url(url).get_backend_name() == "sqlite" else None
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: a single process is the only supported setup there.
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate-lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
