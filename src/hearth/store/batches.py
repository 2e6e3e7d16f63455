"""Batch jobs: create, read, list, cancel, claim (with a heartbeat), record each finished line,
and move through OpenAI's statuses.

Every read names an ``owner`` (the key id, or ``None`` on a server without keys), as files and
stored responses do. Status changes are conditional UPDATEs, so a cancel from one replica and
the runner on another cannot overwrite each other; a claim takes a batch only when nobody holds
it or its holder's heartbeat has gone stale.

Blocking (synchronous SQLAlchemy): the gateway calls it from a worker thread.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy import delete as sa_delete
from sqlalchemy.orm import Session, sessionmaker

from hearth.errors import RateLimited
from hearth.store.errors import db_errors
from hearth.store.tables import ApiKey, StoredBatch, StoredBatchLine, UsageRecord, utcnow

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
FINAL = ("completed", "failed", "expired", "cancelled")


@dataclass(frozen=True)
class BatchView:
    id: str
    key_id: int | None
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, Any] | None
    status: str
    errors: list[Any] | None
    output_file_id: str | None
    error_file_id: str | None
    total: int
    completed: int
    failed: int
    times: dict[str, datetime | None] = field(default_factory=dict)  # created_at, in_progress_at, ...


_TIMES = (
    "created_at", "expires_at", "in_progress_at", "finalizing_at", "completed_at", "failed_at",
    "expired_at", "cancelling_at", "cancelled_at",
)  # fmt: skip


@dataclass(frozen=True)
class FinishedLine:
    line: int
    custom_id: str
    ok: bool
    result: dict[str, Any]  # the output (or error) file's line
    usage: dict[str, Any]  # its usage row


def _view(row: StoredBatch) -> BatchView:
    return BatchView(
        row.id, row.key_id, row.endpoint, row.input_file_id, row.completion_window, row.batch_metadata,
        row.status, row.errors, row.output_file_id, row.error_file_id, row.total, row.completed, row.failed,
        {name: getattr(row, name) for name in _TIMES},
    )  # fmt: skip


def _over_limit(queued: int, tokens: int, limit: int) -> dict[str, Any]:
    message = (
        f"Enqueued token limit reached: this batch holds about {tokens:,} input tokens and your "
        f"unfinished batches {queued:,}, over this key's limit of {limit:,} enqueued tokens. "
        "Try again once some in_progress batches have completed."
    )
    return {"code": "token_limit_exceeded", "message": message, "param": None, "line": None}


def _owned(owner: int | None) -> ColumnElement[bool]:
    return StoredBatch.key_id.is_(None) if owner is None else StoredBatch.key_id == owner


class BatchStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self,
        owner: int | None,
        endpoint: str,
        input_file_id: str,
        window: timedelta,
        metadata: dict[str, Any] | None,
        total: int = 0,
        queued_tokens: int = 0,
        queued_limit: int | None = None,
        refuse_over_limit: bool = False,
    ) -> BatchView:
        """A new batch, ``validating``; or ``failed`` with ``token_limit_exceeded``, as OpenAI's
        are, when its ``queued_tokens`` and those of the key's unfinished batches would pass the
        key's ``queued_limit`` (``refuse_over_limit``: a 429 instead, as Anthropic answers)."""
        now = utcnow()
        row = StoredBatch(
            id=f"batch_{uuid.uuid4().hex}", key_id=owner, endpoint=endpoint, input_file_id=input_file_id,
            completion_window="24h", batch_metadata=metadata, status="validating", total=total, completed=0,
            failed=0, queued_tokens=queued_tokens, created_at=now, expires_at=now + window,
        )  # fmt: skip
        with db_errors(), self._sessions() as session:
            if queued_limit is not None:
                queued = self._queued_tokens(session, owner)
                if queued + queued_tokens > queued_limit:
                    error = _over_limit(queued, queued_tokens, queued_limit)
                    if refuse_over_limit:
                        raise RateLimited(error["message"], reason="batch_queued_tokens")
                    row.status, row.failed_at, row.queued_tokens = "failed", now, 0
                    row.errors = [error]
            session.add(row)
            session.commit()
            return _view(row)

    @staticmethod
    def _queued_tokens(session: Session, owner: int | None) -> int:
        if owner is not None and session.get_bind().dialect.name == "postgresql":
            # Creates of one key take turns here, so two cannot both fit under the limit.
            session.execute(select(ApiKey.id).where(ApiKey.id == owner).with_for_update())
        total = session.execute(
            select(func.coalesce(func.sum(StoredBatch.queued_tokens), 0)).where(
                _owned(owner), StoredBatch.status.in_(ACTIVE)
            )
        ).scalar()
        return int(total or 0)

    def get(self, owner: int | None, batch_id: str) -> BatchView | None:
        with db_errors(), self._sessions() as session:
            row = session.execute(
                select(StoredBatch).where(StoredBatch.id == batch_id, _owned(owner))
            ).scalar()
            return None if row is None else _view(row)

    def by_id(self, batch_id: str) -> BatchView | None:
        """The runner's read: whoever owns it."""
        with db_errors(), self._sessions() as session:
            row = session.get(StoredBatch, batch_id)
            return None if row is None else _view(row)

    def page(self, owner: int | None, limit: int, after: str | None) -> tuple[list[BatchView], bool]:
        """Newest first; ``after`` is the last id of the previous page."""
        with db_errors(), self._sessions() as session:
            query = select(StoredBatch).where(_owned(owner))
            if after is not None:
                anchor = session.execute(
                    select(StoredBatch.created_at).where(StoredBatch.id == after)
                ).scalar()
                if anchor is not None:
                    query = query.where(
                        or_(
                            StoredBatch.created_at < anchor,
                            (StoredBatch.created_at == anchor) & (StoredBatch.id < after),
                        )
                    )
            rows = session.execute(
                query.order_by(StoredBatch.created_at.desc(), StoredBatch.id.desc()).limit(limit + 1)
            ).scalars()
            views = [_view(r) for r in rows]
        return views[:limit], len(views) > limit

    def request_cancel(self, owner: int | None, batch_id: str) -> BatchView | None:
        """``cancelling`` for a batch still under way (the runner finishes the cancel)."""
        with db_errors(), self._sessions() as session:
            session.execute(
                update(StoredBatch)
                .where(
                    StoredBatch.id == batch_id,
                    _owned(owner),
                    StoredBatch.status.in_(("validating", "in_progress")),
                )
                .values(status="cancelling", cancelling_at=utcnow())
            )
            session.commit()
        return self.get(owner, batch_id)

    def claim(self, worker: str, stale_before: datetime) -> BatchView | None:
        """Take one batch that needs a runner: nobody holds it, or its holder went quiet."""
        with db_errors(), self._sessions() as session:
            candidates = session.execute(
                select(StoredBatch.id)
                .where(
                    StoredBatch.status.in_(ACTIVE),
                    or_(StoredBatch.worker.is_(None), StoredBatch.heartbeat_at < stale_before),
                )
                .order_by(StoredBatch.created_at)
                .limit(5)
            ).scalars()
            for batch_id in list(candidates):
                taken = session.execute(
                    update(StoredBatch)
                    .where(
                        StoredBatch.id == batch_id,
                        StoredBatch.status.in_(ACTIVE),
                        or_(StoredBatch.worker.is_(None), StoredBatch.heartbeat_at < stale_before),
                    )
                    .values(worker=worker, heartbeat_at=utcnow())
                )
                session.commit()
                if taken.rowcount:  # type: ignore[attr-defined]
                    row = session.get(StoredBatch, batch_id)
                    session.refresh(row)
                    return None if row is None else _view(row)
        return None

    def beat(self, batch_id: str, worker: str, **values: Any) -> str | None:
        """Refresh the heartbeat (and set ``values``) while this worker holds the batch; its status."""
        with db_errors(), self._sessions() as session:
            session.execute(
                update(StoredBatch)
                .where(StoredBatch.id == batch_id, StoredBatch.worker == worker)
                .values(heartbeat_at=utcnow(), **values)
            )
            session.commit()
            status: str | None = session.execute(
                select(StoredBatch.status).where(StoredBatch.id == batch_id, StoredBatch.worker == worker)
            ).scalar()
            return status

    def move(
        self,
        batch_id: str,
        worker: str,
        status: str,
        *,
        when: str | None = None,
        release: bool = False,
        **values: Any,
    ) -> bool:
        """Set the status (and its timestamp, ``when``) unless the batch has ended or changed hands;
        ``release``: this worker lets go of it (it has ended)."""
        stamp: dict[str, Any] = {when: utcnow()} if when else {}
        if release:
            stamp["worker"] = None
        with db_errors(), self._sessions() as session:
            moved = session.execute(
                update(StoredBatch)
                .where(
                    StoredBatch.id == batch_id, StoredBatch.worker == worker, StoredBatch.status.not_in(FINAL)
                )
                .values(status=status, heartbeat_at=utcnow(), **stamp, **values)
            )
            session.commit()
            return bool(moved.rowcount)  # type: ignore[attr-defined]

    def record_lines(self, batch_id: str, worker: str, finished: list[FinishedLine]) -> bool:
        """Finished lines' results and their usage rows, in one transaction: a line is either
        done and billed, or neither (and runs again on the replica that takes the batch over).

        Only the batch's holder records, and a line already recorded is not recorded (or billed)
        again; False when ``worker`` no longer holds the batch (another replica took it over).
        """
        if not finished:
            return True
        with db_errors(), self._sessions() as session:
            # First, so that on PostgreSQL the batch's row stays locked until the commit.
            held = session.execute(
                update(StoredBatch)
                .where(StoredBatch.id == batch_id, StoredBatch.worker == worker)
                .values(heartbeat_at=utcnow())
            )
            if not held.rowcount:  # type: ignore[attr-defined]
                session.rollback()
                return False
            numbers = [f.line for f in finished]
            there = set(
                session.execute(
                    select(StoredBatchLine.line).where(
                        StoredBatchLine.batch_id == batch_id, StoredBatchLine.line.in_(numbers)
                    )
                ).scalars()
            )
            new = [f for f in finished if f.line not in there]
            if new:
                session.execute(
                    insert(StoredBatchLine),
                    [{"batch_id": batch_id, "line": f.line, "custom_id": f.custom_id, "ok": f.ok,
                      "result": f.result} for f in new],
                )  # fmt: skip
                session.execute(insert(UsageRecord), [f.usage for f in new])
                ok = sum(1 for f in new if f.ok)
                session.execute(
                    update(StoredBatch)
                    .where(StoredBatch.id == batch_id)
                    .values(completed=StoredBatch.completed + ok, failed=StoredBatch.failed + len(new) - ok)
                )
            session.commit()
            return True

    def delete(self, batch_id: str) -> None:
        with db_errors(), self._sessions() as session:
            session.execute(sa_delete(StoredBatch).where(StoredBatch.id == batch_id))
            session.commit()

    def lines(self, batch_id: str) -> list[tuple[int, bool, dict[str, Any]]]:
        """The finished lines, in order: (line, ok, result)."""
        with db_errors(), self._sessions() as session:
            rows = session.execute(
                select(StoredBatchLine.line, StoredBatchLine.ok, StoredBatchLine.result)
                .where(StoredBatchLine.batch_id == batch_id)
                .order_by(StoredBatchLine.line)
            ).all()
            return [(int(n), bool(ok), dict(result)) for n, ok, result in rows]
