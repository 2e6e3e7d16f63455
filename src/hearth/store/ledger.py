"""The usage ledger writer: one row per request, written off the request path.

``record()`` only appends to an in-memory queue (and, with a journal, one line to a local file;
no awaiting), so a slow or dead database never slows a request, and a killed process loses no
row (store/journal.py). A background thread writes the queue in batches (every
``interval_s``, or as soon as ``batch_size`` rows wait), one multi-row INSERT per batch.

When the database is unreachable the rows stay queued, in order, and the thread retries with
exponential backoff; nothing is lost when it comes back. The queue is bounded by
``max_pending`` (rows beyond it are counted in ``dropped``). A batch the database rejects for
its content (a constraint violation, not an outage) is retried row by row and only the bad rows
are discarded (counted in ``discarded``), so one bad row can't wedge the ledger.

Call ``close()`` on graceful shutdown (SIGTERM): it drains the queue, waiting up to its timeout.
``flush()`` and ``close()`` block, so async code runs them in a thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, update
from sqlalchemy import exc as sa_exc

from hearth.store.errors import is_transient
from hearth.store.journal import LedgerJournal
from hearth.store.replay import replay_journal
from hearth.store.tables import UsageRecord, utcnow
from hearth.store.usage_event import UsageEvent
from hearth.store.usage_event import event_tokens as _tokens

log = logging.getLogger(__name__)

_TABLE = UsageRecord.metadata.tables[UsageRecord.__tablename__]
# Answers a load balancer retries on another replica (the shipped nginx config does): a row with
# one of these gives way to the retry's row under the same dedupe key.
RETRIED_REFUSALS = (502, 503)


class LedgerWriter:
    """Batches :class:`UsageEvent` rows into ``usage_records`` from a background thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 500,
        interval_s: float = 0.2,
        max_pending: int = 1_000_000,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        start: bool = True,
        journal: LedgerJournal | None = None,
    ) -> None:
        if batch_size < 1 or max_pending < 1:
            raise ValueError("batch_size and max_pending must be positive")
        self._engine = engine
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self._queue: deque[UsageEvent] = deque()
        self._waiters: deque[tuple[int, Future[bool]]] = deque()  # (row number, record_durable's future)
        # Tokens queued per key, so budget checks can count rows not yet in the database.
        self._queued_tokens: dict[int, int] = {}
        self._cond = threading.Condition()
        self._accepted = 0  # rows ever queued
        self._done = 0  # rows ever written or discarded; flush waits on this
        self._written = 0
        self._dropped = 0
        self._discarded = 0
        self._deduplicated = 0
        self._healthy = True
        self._urgent = False  # set by flush()/close(): skip the interval/backoff wait once
        self._flushers = 0
        self._stopping = False
        self._stop_deadline = float("inf")
        self._closed = False
        # Rows journaled before they are queued survive a killed process (store/journal.py).
        self._journal = journal
        self._marks = itertools.count(1)
        self.replayed = 0  # rows of dead processes' journals written at start-up
        self.outage_cause = ""  # why the last write could not reach the database, for operators
        self._thread = threading.Thread(target=self._run, name="hearth-ledger", daemon=True)
        if start:
            self.start()

    # -- request path ------------------------------------------------------------------------

    def record(self, event: UsageEvent) -> bool:
        """Queue one event; never blocks on I/O. False if it was dropped (queue full or closed)."""
        return self._enqueue(event, None)

    def record_durable(self, event: UsageEvent) -> Future[bool]:
        """Queue one event and write it now (with whatever else is queued: a group commit).

        The future resolves True once the row is committed (or was a duplicate of a committed
        one), False if it could not be queued. For servers that must not lose a row when killed.
        """
        done: Future[bool] = Future()
        if not self._enqueue(event, done):
            done.set_result(False)
        return done

    def _enqueue(self, event: UsageEvent, done: Future[bool] | None) -> bool:
        with self._cond:
            if self._closed or len(self._queue) >= self.max_pending:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 10_000 == 0:
                    log.error("usage ledger dropped %d rows (queue full or closed)", self._dropped)
                return False
            self._queue.append(event)
            self._accepted += 1
            if self._journal is not None:
                row = event.as_row()
                if event.mark_id is not None:
                    row["mark_id"] = event.mark_id
                self._journal.append(self._accepted, row)
            if done is not None:
                self._waiters.append((self._accepted, done))
                self._urgent = True
                self._cond.notify_all()
            if event.key_id is not None:
                tokens = _tokens(event)
                self._queued_tokens[event.key_id] = self._queued_tokens.get(event.key_id, 0) + tokens
            if len(self._queue) % self.batch_size == 0:
                self._cond.notify_all()
        return True

    def mark(self, event: UsageEvent) -> str | None:
        """Journal that ``event``'s stream began to answer; the id goes on its final row. A mark
        left without a row was a stream a crash cut short. None without a journal."""
        if self._journal is None:
            return None
        with self._cond:
            mark_id = f"{next(self._marks)}"
            self._journal.mark(mark_id, event.as_row())
        return mark_id

    # -- state -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Rows queued and not yet committed (including the batch being written)."""
        return len(self._queue)

    @property
    def lag_seconds(self) -> float:
        """How long the oldest row still queued has waited: the ledger's write lag."""
        with self._cond:
            oldest = self._queue[0].created_at if self._queue else None
        return 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())

    @property
    def healthy(self) -> bool:
        """False while the last write attempt failed because the database was unreachable."""
        return self._healthy

    @property
    def written(self) -> int:
        return self._written

    @property
    def dropped(self) -> int:
        """Rows refused because the queue was full (or the writer closed)."""
        return self._dropped

    @property
    def discarded(self) -> int:
        """Rows the database rejected for their content."""
        return self._discarded

    @property
    def deduplicated(self) -> int:
        """Rows not written because a row with the same dedupe key already was (a retried request)."""
        return self._deduplicated

    def pending_tokens(self, key_id: int) -> int:
        """Tokens of ``key_id``'s rows still queued (O(1)): budgets add them to the database's sum."""
        with self._cond:
            return self._queued_tokens.get(key_id, 0)

    def stats(self) -> dict[str, int | bool]:
        return {
            "pending": self.pending,
            "healthy": self.healthy,
            "written": self.written,
            "dropped": self.dropped,
            "discarded": self.discarded,
            "deduplicated": self.deduplicated,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if not self._thread.is_alive() and not self._closed:
            self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row recorded before this call is written. True if it was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._flushers += 1
            self._urgent = True
            self._cond.notify_all()
            try:
                while self._done < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flushers -= 1

    def close(self, timeout: float = 10.0) -> bool:
        """Stop accepting rows, drain the queue (up to ``timeout`` s) and stop the thread.

        True if everything was written; otherwise the rows still queued are logged as lost.
        """
        with self._cond:
            self._closed = True
            self._stopping = True
            self._stop_deadline = time.monotonic() + timeout
            self._urgent = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)
        lost = self.pending
        with self._cond:
            while self._waiters:
                self._waiters.popleft()[1].set_result(False)
            if self._journal is not None:
                self._journal.close(everything_committed=lost == 0)  # else replayed at the next start
        if lost:
            log.error("usage ledger closed with %d rows unwritten (database unavailable)", lost)
        return lost == 0

    # -- background thread -------------------------------------------------------------------

    def _run(self) -> None:
        if self._journal is not None:
            self._replay(self._journal.directory)
        backoff = 0.0
        while True:
            with self._cond:
                self._wait(backoff)
                batch = list(itertools.islice(self._queue, self.batch_size))
                stopping = self._stopping
                if not batch and stopping:
                    return
                if stopping and backoff and time.monotonic() >= self._stop_deadline:
                    return
            if not batch:
                continue
            try:
                consumed, outage = self._write(batch)
            except Exception:  # never let a bug kill the thread and silently stop the ledger
                log.exception("usage ledger write failed unexpectedly")
                consumed, outage = 0, True
            with self._cond:
                for _ in range(consumed):
                    self._forget(self._queue.popleft())
                self._done += consumed
                while self._waiters and self._waiters[0][0] <= self._done:
                    self._waiters.popleft()[1].set_result(True)
                if consumed and self._journal is not None:
                    self._journal.committed(self._done, self._accepted)
                if consumed:
                    self._cond.notify_all()
            if outage:
                if self._healthy:
                    log.warning(
                        "usage ledger: database unavailable (%s), keeping %d rows queued",
                        self.outage_cause, self.pending,
                    )  # fmt: skip
                self._healthy = False
                backoff = min(self.max_backoff_s, backoff * 2 or self.min_backoff_s)
            else:
                if not self._healthy:
                    log.info("usage ledger: database back, writing %d queued rows", self.pending)
                self._healthy = True
                backoff = 0.0

    def _replay(self, directory: Path) -> None:
        """Write the rows dead processes journaled and never committed, first, retrying while
        the database is away (rows queued meanwhile wait behind them, journaled)."""
        backoff = self.min_backoff_s
        while True:
            try:
                written = replay_journal(self._engine, directory)
                break
            except Exception as exc:
                with self._cond:
                    if self._stopping:
                        return  # the files stay for the next start
                    self._healthy = False
                    log.warning("usage ledger: cannot replay the journal yet (%s)", type(exc).__name__)
                    self._cond.wait(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
        self.replayed += written
        self._written += written

    def _forget(self, event: UsageEvent) -> None:
        """Drop a written/discarded row from the per-key queued-token counts (lock held)."""
        if event.key_id is None:
            return
        left = self._queued_tokens.get(event.key_id, 0) - _tokens(event)
        if left > 0:
            self._queued_tokens[event.key_id] = left
        else:
            self._queued_tokens.pop(event.key_id, None)

    def _wait(self, backoff: float) -> None:
        """Sleep (lock held) until a batch is due: full, interval/backoff elapsed, or urgent."""
        deadline = time.monotonic() + (backoff or self.interval_s)
        while True:
            if self._urgent:
                # Stay urgent while someone waits in flush()/close(), so the drain doesn't pause.
                self._urgent = self._flushers > 0 or self._stopping
                if not backoff or not self._queue:
                    return
                # During an outage a flush gets one immediate retry, not a hot loop.
                self._urgent = False
                return
            if not backoff and len(self._queue) >= self.batch_size:
                return
            now = time.monotonic()
            remaining = deadline - now
            if self._stopping:  # don't sleep a long backoff past close()'s deadline
                remaining = min(remaining, self._stop_deadline - now)
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _write(self, batch: list[UsageEvent]) -> tuple[int, bool]:
        """Insert ``batch``; returns (rows consumed from the front of the queue, outage?)."""
        rows = [event.as_row() for event in batch]
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(_TABLE), rows)
        except Exception as exc:
            if is_transient(exc):
                self.outage_cause = outage_cause(exc)
                return 0, True
            log.warning("usage ledger batch rejected (%s); retrying row by row", type(exc).__name__)
            return self._write_one_by_one(rows)
        self._written += len(rows)
        return len(rows), False

    def _write_one_by_one(self, rows: list[dict[str, Any]]) -> tuple[int, bool]:
        consumed = 0
        for row in rows:
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(_TABLE), [row])
                self._written += 1
            except Exception as exc:
                if not _is_bad_row(exc):
                    # e.g. the table is missing (migrations not run): keep the rows, retry later.
                    return consumed, True
                if row.get("dedupe_key") is not None and isinstance(exc, sa_exc.IntegrityError):
                    # A load balancer retried a request whose first replica had already recorded it.
                    self._deduplicated += 1
                    if self._supersede_refusal(row):
                        log.info("usage ledger: request %s answered on a retry", row.get("request_id"))
                    else:
                        log.info("usage ledger: request %s was already recorded", row.get("request_id"))
                else:
                    self._discarded += 1
                    log.error("usage ledger discarded the row of request %s: %s", row.get("request_id"), exc)
            consumed += 1
        return consumed, False

    def _supersede_refusal(self, row: dict[str, Any]) -> bool:
        """Replace a retried request's first row when that was a refusal the load balancer retries.

        A replica that is starting or not ready answers 503, and the load balancer sends the
        request on to another; the row that counts is the answer the client got, so the retry's
        row takes the refusal's place (the other order keeps the answer: a refusal never
        replaces one).
        """
        if row["status_code"] in RETRIED_REFUSALS:
            return False
        values = {k: v for k, v in row.items() if k != "id"}
        try:
            with self._engine.begin() as conn:
                changed = conn.execute(
                    update(_TABLE)
                    .where(
                        _TABLE.c.dedupe_key == row["dedupe_key"], _TABLE.c.status_code.in_(RETRIED_REFUSALS)
                    )
                    .values(values)
                ).rowcount
        except Exception as exc:  # keep the refusal rather than wedge the writer
            log.warning("usage ledger: could not replace the refusal of %s: %s", row.get("request_id"), exc)
            return False
        return bool(changed)


def outage_cause(exc: BaseException) -> str:
    """The driver's own first line (``database or disk is full``, ``connection refused``): no
    secret is in it, and it tells an operator what to fix."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return (text[0] if text else type(cause).__name__)[:200]


def _is_bad_row(exc: BaseException) -> bool:
    """True when the row itself is at fault, so retrying it can never succeed."""
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        return True
    # Otherwise only a DBAPI error is the database's fault; a bind processor or the driver
    # refusing a Python value (StatementError, TypeError, ...) is the row's.
    return not (is_transient(exc) or isinstance(exc, sa_exc.DBAPIError))
