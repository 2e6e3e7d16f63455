"""The store as one object: the database engine, its sessions, keys, the ledger, stored
responses and queries.

``app.py`` builds one and hands its parts to the services; nothing above them touches sessions.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as DbEngine
from sqlalchemy.orm import Session, sessionmaker

from hearth.store import migrate
from hearth.store.batches import BatchStore
from hearth.store.cluster import ClusterStore
from hearth.store.connection import create_db_engine, one_snapshot, session_factory
from hearth.store.files import FileStore
from hearth.store.journal import LedgerJournal
from hearth.store.keys import KeyStore
from hearth.store.ledger import LedgerWriter
from hearth.store.responses import ResponseStore
from hearth.store.usage import UsageSummary, month_start, tokens_used_since, usage_summary
from hearth.store.usage_recent import hours_today, recent_requests

log = logging.getLogger("hearth.store")


class Database:
    def __init__(self, url: str, journal_dir: Path | None = None) -> None:
        """``journal_dir``: where the ledger journals its rows until they are committed (none:
        rows wait in memory only)."""
        self.url = url
        self.engine: DbEngine = create_db_engine(url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.keys = KeyStore(self.sessions)
        self.cluster = ClusterStore(self.sessions)
        self.responses = ResponseStore(self.sessions)
        self.files = FileStore(self.sessions)
        self.batches = BatchStore(self.sessions)
        journal = None if journal_dir is None else LedgerJournal(journal_dir)
        self.ledger = LedgerWriter(self.engine, start=False, journal=journal)
        self.ready = False
        self.error: str | None = "database not connected yet"

    async def connect(self) -> None:
        """Run migrations, retrying until the database answers; the server stays up meanwhile."""
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(migrate.upgrade, self.url)
            except Exception as exc:
                self.error = f"database unavailable: {type(exc).__name__}"
                log.warning("database not ready (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            self.ledger.start()
            self.ready, self.error = True, None
            log.info("database ready")
            return

    def problem(self) -> str | None:
        if not self.ready:
            return self.error
        if not self.ledger.healthy:
            return f"database unavailable: ledger writes are failing ({self.ledger.outage_cause})"
        return None

    def close(self, drain_timeout_s: float = 30.0) -> None:
        """Drain every queued ledger row (graceful shutdown), then drop the connections."""
        self.ledger.close(drain_timeout_s)
        self.engine.dispose()

    # -- queries (blocking: callers on the event loop run them in a thread) ----------------------

    def month_tokens(self, key_id: int) -> int:
        with self.sessions() as session:
            return tokens_used_since(session, key_id, month_start())

    def recent(self, key_id: int, limit: int) -> dict[str, Any]:
        """The key's latest requests and today's hours (the usage page's recent activity)."""
        with self.sessions() as session:
            return {
                "requests": recent_requests(session, key_id, limit),
                "hours": hours_today(session, key_id),
            }

    def usage(self, key_id: int | None, since: datetime | None = None) -> UsageSummary:
        with self.sessions() as session:
            one_snapshot(session)  # totals, models and days must add up while the ledger writes
            return usage_summary(session, key_id=key_id, since=since)
