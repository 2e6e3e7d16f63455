"""The ledger's write-ahead journal: rows a killed process never committed are replayed at the
next start, exactly once; a stream a crash cut short gets an unbilled row; files are emptied
once their rows are committed, and a live process's journal is never replayed by another."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, func, select

from hearth.store.journal import CRASHED, LedgerJournal, read_orphans
from hearth.store.ledger import LedgerWriter
from hearth.store.replay import replay_journal
from hearth.store.tables import UsageRecord
from hearth.store.usage_event import UsageEvent


def event(n: int, **extra: object) -> UsageEvent:
    fields: dict[str, object] = {"prompt_tokens": 5, **extra}
    return UsageEvent(request_id=f"req-{n}", model="m", route="POST /v1/embeddings", **fields)  # type: ignore[arg-type]


def ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(UsageRecord.request_id)))


def killed(writer: LedgerWriter) -> None:
    """What ``kill -9`` leaves: the journal's files, closed where they are, nothing committed."""
    assert writer._journal is not None
    writer._journal.close(everything_committed=False)


def test_rows_a_killed_writer_never_committed_are_replayed_once(engine: Engine, tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    dead = LedgerWriter(engine, start=False, journal=LedgerJournal(journal_dir))  # never writes
    for n in range(5):
        assert dead.record(event(n))
    killed(dead)
    assert ids(engine) == []

    writer = LedgerWriter(engine, journal=LedgerJournal(journal_dir))
    writer.record(event(99))
    assert writer.flush(10)
    assert ids(engine) == sorted([*(f"req-{n}" for n in range(5)), "req-99"])
    assert writer.replayed == 5
    assert writer.close(5)
    assert list(journal_dir.iterdir()) == []  # all committed: nothing left to replay
    assert replay_journal(engine, journal_dir) == 0


def test_rows_committed_before_the_kill_are_not_written_twice(engine: Engine, tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    journal = LedgerJournal(journal_dir)
    first = event(1)
    with engine.begin() as conn:  # committed, and the process died before it emptied its journal
        conn.execute(UsageRecord.__table__.insert(), [first.as_row()])
    journal.append(1, first.as_row())
    journal.append(2, event(2).as_row())
    journal.close(everything_committed=False)
    assert replay_journal(engine, journal_dir) == 1
    assert ids(engine) == ["req-1", "req-2"]


def test_a_stream_the_crash_cut_short_gets_an_unbilled_row(engine: Engine, tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    dead = LedgerWriter(engine, start=False, journal=LedgerJournal(journal_dir))
    finished_mark = dead.mark(event(1, stream=True))
    dead.record(event(1, stream=True, completion_tokens=7, mark_id=finished_mark))
    dead.mark(event(2, stream=True, prompt_tokens=30))  # the kill comes mid-stream
    killed(dead)
    replay_journal(engine, journal_dir)
    with engine.connect() as conn:
        rows = {r.request_id: r for r in conn.execute(select(UsageRecord.__table__))}
    assert set(rows) == {"req-1", "req-2"}
    assert (rows["req-1"].status_code, rows["req-1"].completion_tokens) == (200, 7)
    cut = rows["req-2"]
    assert (cut.status_code, cut.error_type, cut.stream) == (500, CRASHED, True)
    assert cut.prompt_tokens == cut.completion_tokens == cut.total_tokens == 0  # not billed


def test_a_line_cut_by_the_kill_is_skipped(engine: Engine, tmp_path: Path) -> None:
    journal = LedgerJournal(tmp_path)
    journal.append(1, event(1).as_row())
    journal.close(everything_committed=False)
    (path,) = tmp_path.iterdir()
    with path.open("ab") as file:
        file.write(b'{"row":2,"request_id":"req-')  # the answer had not gone out
    assert replay_journal(engine, tmp_path) == 1


def test_committed_rows_leave_the_journal(engine: Engine, tmp_path: Path) -> None:
    journal = LedgerJournal(tmp_path, segment_bytes=2000)
    writer = LedgerWriter(engine, journal=journal)
    for n in range(40):
        writer.record(event(n))
    assert writer.flush(10)
    (active,) = tmp_path.iterdir()  # the full files were deleted, the last one emptied
    assert active.stat().st_size == 0
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(UsageRecord)) == 40
    assert writer.close(5)


def test_a_live_process_journal_is_not_replayed(engine: Engine, tmp_path: Path) -> None:
    live = LedgerJournal(tmp_path)
    live.append(1, event(1).as_row())
    assert read_orphans(tmp_path).paths == []  # its lock says it lives
    assert replay_journal(engine, tmp_path) == 0
    assert ids(engine) == []
    live.close(everything_committed=False)
    assert replay_journal(engine, tmp_path) == 1


def test_a_full_disk_keeps_the_row_in_memory(engine: Engine, tmp_path: Path) -> None:
    journal = LedgerJournal(tmp_path)
    os.close(journal._active.fd)
    journal._active.fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    writer = LedgerWriter(engine, journal=journal)
    assert writer.record(event(1))
    assert writer.flush(10) and ids(engine) == ["req-1"]
    assert journal.errors == 1
    writer.close(5)
