"""The ledger's write-ahead journal: usage rows on local disk until the database has them.

The ledger commits rows in batches off the request path; a process killed between an answer and
its batch's commit would lose that row. So each row is first appended to a journal file (one
``write``, no ``fsync``: the bytes are in the kernel's page cache the moment the call returns,
and a killed process cannot take them back; a power cut can, which is what waiting for the
commit, ``HEARTH_LEDGER_COMMIT_WAIT``, is for). Once every row in a file is committed the file
is emptied or deleted, so the journal stays a few kilobytes under steady load.

A stream also leaves a mark when its first byte goes out. A mark whose row never came was a
stream cut by a crash: replay gives it a row of its own (status 500, no tokens billed; see
docs/reliability.md).

Each process writes its own files and holds an exclusive ``flock`` on them while it lives, so a
replica sharing the data directory never replays a live one's journal. At start-up the files no
live process holds are replayed: their rows, less those the database already has (a crash
between a commit and the file's truncation), are inserted, then the files are deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("hearth.store.journal")
SEGMENT_BYTES = 4 * 1024 * 1024  # a new file past this, so committed ones can be deleted
CRASHED = "interrupted_by_crash"


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    last_row: int = 0  # the number of the last row appended to it
    size: int = 0


@dataclass(slots=True)
class Orphans:
    """What the journals of dead processes held: finished rows, and marks of streams that
    never finished, each a dict of a usage row's columns."""

    paths: list[Path] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def crashed_streams(self, marks: dict[str, dict[str, Any]]) -> None:
        """Give each stream mark with no row a row of its own: an answer the crash cut short. It
        bills nothing: the answer never ended, so the client has no usage to reconcile against,
        and the failure was the server's (as a 5xx before any token is never billed)."""
        unbilled = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0}
        for mark in marks.values():
            self.rows.append({**mark, **unbilled, "status_code": 500, "error_type": CRASHED})


class LedgerJournal:
    """Append-only JSON lines in ``directory``; the writer calls it with its lock held."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._name = f"ledger-{os.getpid()}-{secrets.token_hex(4)}"
        self._count = 0
        self._segments: list[_Segment] = []
        self._active = self._open_segment()
        self.errors = 0  # appends that failed (a full disk): the rows stay queued in memory

    def _open_segment(self) -> _Segment:
        self._count += 1
        path = self.directory / f"{self._name}-{self._count:06d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live
        segment = _Segment(path, fd)
        self._segments.append(segment)
        return segment

    def append(self, row_number: int, row: dict[str, Any]) -> None:
        """Journal row ``row_number`` (rows are numbered in the order they are queued)."""
        self._write({"row": row_number, **_plain(row)}, row_number)

    def mark(self, mark_id: str, row: dict[str, Any]) -> None:
        """A stream began to answer; its row, when it comes, carries ``mark_id``."""
        self._write({"mark": mark_id, **_plain(row)}, None)

    def _write(self, line: dict[str, Any], row_number: int | None) -> None:
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        active = self._active
        try:
            os.write(active.fd, data)
        except OSError as exc:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.error(
                    "ledger journal: cannot append (%s); %d rows not journaled", exc.strerror, self.errors
                )
            return
        active.size += len(data)
        if row_number is not None:
            active.last_row = row_number
        if active.size >= self.segment_bytes:
            self._active = self._open_segment()

    def committed(self, done: int, accepted: int) -> None:
        """Rows up to ``done`` are in the database (of ``accepted`` queued so far)."""
        for segment in list(self._segments):
            if segment is self._active:
                if done >= accepted and segment.size:
                    os.ftruncate(segment.fd, 0)  # O_APPEND: the next row goes at the start
                    segment.size = 0
            elif segment.last_row <= done:
                self._drop(segment)

    def _drop(self, segment: _Segment) -> None:
        self._segments.remove(segment)
        with contextlib.suppress(OSError):
            segment.path.unlink()
        os.close(segment.fd)

    def close(self, everything_committed: bool) -> None:
        """Delete the journal when every row is in the database; else leave it for replay."""
        for segment in list(self._segments):
            if everything_committed:
                self._drop(segment)
            else:
                os.close(segment.fd)
        self._segments.clear()


def read_orphans(directory: Path) -> Orphans:
    """The rows journaled by processes that died, from the files no live process holds (the
    ones read stay locked by this process until :func:`forget` deletes them)."""
    orphans = Orphans()
    marks: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return orphans
    for path in sorted(directory.glob("ledger-*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live process's journal
            continue
        with open(fd, "rb", closefd=False) as file:
            text = file.read()
        orphans.paths.append(path)
        _HELD[path] = fd
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by the kill: its answer had not gone out
            if "mark" in entry:
                marks[entry.pop("mark")] = _typed(entry)
                continue
            entry.pop("row", None)
            mark = entry.pop("mark_id", None)
            if mark is not None:
                marks.pop(mark, None)
            orphans.rows.append(_typed(entry))
    orphans.crashed_streams(marks)
    return orphans


_HELD: dict[Path, int] = {}  # orphan files this process read and holds until they are replayed


def forget(paths: list[Path]) -> None:
    """Delete replayed orphan files."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
        fd = _HELD.pop(path, None)
        if fd is not None:
            os.close(fd)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    created = row.get("created_at")
    return {**row, "created_at": created.isoformat()} if isinstance(created, datetime) else row


def _typed(entry: dict[str, Any]) -> dict[str, Any]:
    created = entry.get("created_at")
    if isinstance(created, str):
        entry["created_at"] = datetime.fromisoformat(created)
    return entry
