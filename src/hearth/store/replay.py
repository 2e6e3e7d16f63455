"""Replaying the ledger journals of processes that died: their rows the database lacks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy import exc as sa_exc

from hearth.store.journal import forget, read_orphans
from hearth.store.tables import UsageRecord

log = logging.getLogger("hearth.store.journal")
_TABLE = UsageRecord.metadata.tables[UsageRecord.__tablename__]


def replay_journal(engine: Engine, directory: Path) -> int:
    """Insert what the dead processes' journals in ``directory`` hold and the database lacks,
    then delete those files: the number of rows inserted. Raises while the database is away
    (the files stay)."""
    orphans = read_orphans(directory)
    if not orphans.paths:
        return 0
    written = replay_rows(engine, orphans.rows)
    forget(orphans.paths)
    log.info(
        "usage ledger: replayed %d rows from %d journal files of stopped processes (%d were written already)",
        written, len(orphans.paths), len(orphans.rows) - written,
    )  # fmt: skip
    return written


def replay_rows(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """Insert journaled ``rows`` the database lacks (a process killed between a commit and
    emptying its journal leaves rows that are in both): the number inserted."""
    missing: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            ids = {row["request_id"] for row in chunk}
            query = select(_TABLE.c.request_id, _TABLE.c.created_at).where(_TABLE.c.request_id.in_(ids))
            known = {(r.request_id, r.created_at) for r in conn.execute(query)}
            missing += [row for row in chunk if (row["request_id"], row["created_at"]) not in known]
    known_keys: set[str] = set()
    for row in missing:
        key = row.get("dedupe_key")
        if key is not None and key in known_keys:
            row["dedupe_key"] = None  # never (one request's row twice in one journal)
        elif key is not None:
            known_keys.add(key)
    inserted = 0
    with engine.begin() as conn:
        for row in missing:
            try:
                with conn.begin_nested():
                    conn.execute(insert(_TABLE), [row])
                inserted += 1
            except sa_exc.IntegrityError:  # its dedupe key was recorded by another replica's retry
                continue
    return inserted
