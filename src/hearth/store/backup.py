"""Backups and restores of the database: SQLite's online backup API, or pg_dump / pg_restore.

SQLite: ``sqlite3.Connection.backup`` copies the database page by page under SQLite's own
locks, so the copy is consistent (every committed transaction or none of it) while a server
keeps writing; a plain ``cp`` of a WAL database can lose or tear the latest commits. A restore
is the same API the other way round, so even an open database is replaced atomically.

PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot, taken while the server runs)
and ``pg_restore --clean --if-exists --single-transaction``: a restore either applies whole or
leaves the database as it was.

A restore refuses to replace a database that a running ``hearth serve`` uses, unless forced:
servers on SQLite hold a shared lock on ``<database>.serving`` for their whole life, and
servers on PostgreSQL connect with ``application_name=hearth``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3

# For pg_dump and pg_restore, with argument lists, no shell (bandit B404).
import subprocess  # nosec B404
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from hearth.store.connection import is_postgresql, is_sqlite, sqlite_path

APPLICATION_NAME = "hearth"  # what servers' PostgreSQL connections call themselves (db.py)


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why, for the operator."""


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq's tools take it (no ``+driver``)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for in-memory SQLite and other databases."""
    return sqlite_path(url) if is_sqlite(url) else None


def _serving_lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".serving")


def hold_serving_lock(url: str) -> IO[bytes] | None:
    """For ``hearth serve``: a shared lock on the SQLite database's ``.serving`` file, held until
    the process exits (keep the returned file open). Several servers may share it; a restore
    needs it exclusively. ``None`` for PostgreSQL or in-memory SQLite."""
    database = sqlite_file(url)
    if database is None:
        return None
    database.parent.mkdir(parents=True, exist_ok=True)
    handle = _serving_lock_path(database).open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    return handle


def _sqlite_in_use(database: Path) -> bool:
    path = _serving_lock_path(database)
    if not path.exists():
        return False
    with path.open("ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def backup(url: str, target: Path) -> Path:
    """Write a consistent copy of the database at ``url`` to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite_file(url)
    if source is not None:
        if not source.exists():
            raise BackupError(f"no database at {source}")
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        with sqlite3.connect(source) as src, sqlite3.connect(partial) as dst:
            src.backup(dst)  # online: consistent even while the server writes
        os.replace(partial, target)  # never a half-written file under the final name
        return target
    _need("pg_dump")
    _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), libpq_url(url)])
    return target


def restore(url: str, source: Path, *, force: bool = False) -> None:
    """Replace the database at ``url`` with the backup ``source`` (then migrate it to head)."""
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    database = sqlite_file(url)
    if database is not None:
        _check_sqlite_backup(source)
        if not force and _sqlite_in_use(database):
            raise BackupError(
                f"a running hearth serve uses {database}: stop it first (or pass --force to "
                "replace the database under it)"
            )
        database.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(source) as src, sqlite3.connect(database) as dst:
            src.backup(dst)
    elif is_postgresql(url):
        _need("pg_restore")
        if not force and (users := _postgres_servers(url)):
            raise BackupError(
                f"{users} running hearth server connection(s) use this database: stop them first "
                "(or pass --force)"
            )
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                "--dbname",
                libpq_url(url),
                str(source),
            ]
        )
    else:
        raise BackupError(f"restores handle SQLite and PostgreSQL, not {make_url(url).get_backend_name()}")
    from hearth.store import migrate

    migrate.upgrade(url)  # a backup from an older release gets this release's schema


def _check_sqlite_backup(source: Path) -> None:
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as conn:
            ok = conn.execute("PRAGMA integrity_check").fetchone()
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} is not a SQLite database: {exc}") from exc
    if ok is None or ok[0] != "ok":
        raise BackupError(f"{source} fails SQLite's integrity check: {ok}")
    if "alembic_version" not in tables or "api_keys" not in tables:
        raise BackupError(f"{source} is not a Hearth database (no alembic_version/api_keys tables)")


def _postgres_servers(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"application_name": "hearth-restore"})
    try:
        with engine.connect() as conn:
            count = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": APPLICATION_NAME},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is needed for PostgreSQL (Debian: apt install postgresql-client)")


def _run(command: list[str]) -> None:
    # An argument list (no shell) of pg_dump/pg_restore and paths or URLs the operator gave.
    result = subprocess.run(command, capture_output=True, text=True)  # nosec B603
    if result.returncode != 0:
        # The URL (with any password) is an argument: report the tool's own words, not the command.
        raise BackupError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
