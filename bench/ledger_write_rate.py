"""How many usage rows a second the ledger writes into PostgreSQL, and what the request path
pays meanwhile.

Hearth's own ``LedgerWriter`` (batched multi-row INSERTs from its background thread, the
journal on, as ``hearth serve`` runs it) on a fresh PostgreSQL database. Producer threads record
rows as a server's request path does (``record()``: a queue append and one journal line), at a
fixed offered rate, for ``--seconds``; the figure is the rate of rows *committed*, read from
the database, and whether the queue stayed bounded (sustained, not buffered). The request path's
cost is each ``record()`` call's time, while the writer is busy, against the same calls with the
writer stopped (nothing written: the anchor), in alternating rounds.

    .venv/bin/python -m bench.ledger_write_rate [--rate 20000] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console

from bench.common import RESULTS
from hearth.store.connection import create_db_engine
from hearth.store.journal import LedgerJournal
from hearth.store.ledger import LedgerWriter
from hearth.store.migrate import upgrade
from hearth.store.usage_event import UsageEvent

console = Console()
PRODUCERS = 4


def offer(writer: LedgerWriter, rate: float, seconds: float) -> list[float]:
    """Record rows at ``rate`` a second from PRODUCERS threads; each record() call's µs."""
    costs: list[list[float]] = [[] for _ in range(PRODUCERS)]
    per_thread = rate / PRODUCERS

    def produce(mine: list[float], index: int) -> None:
        started = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - started < seconds:
            due = int((now - started) * per_thread)
            while n < due:
                event = UsageEvent(request_id=f"b-{index}-{n}", model="smollm2-135m", route="POST /v1/chat/completions",
                                   key_id=None, prompt_tokens=40, completion_tokens=20, latency_ms=120.0)  # fmt: skip
                t = time.perf_counter()
                writer.record(event)
                mine.append((time.perf_counter() - t) * 1e6)
                n += 1
            time.sleep(0.001)

    threads = [threading.Thread(target=produce, args=(costs[i], i)) for i in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [c for mine in costs for c in mine]


def one_round(server: str, rate: float, seconds: float, writing: bool) -> dict[str, Any]:
    name = f"hearth_rate_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = server.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        engine = create_db_engine(url)
        journal = LedgerJournal(Path(tempfile.mkdtemp(prefix="hearth-journal-")))
        writer = LedgerWriter(engine, journal=journal, start=writing)
        began = time.perf_counter()
        costs = offer(writer, rate, seconds)
        offered_s = time.perf_counter() - began
        peak_pending = writer.pending
        result: dict[str, Any] = {"offered": len(costs), "record_us_p50": statistics.median(costs),
                                  "record_us_p99": statistics.quantiles(costs, n=100)[98]}  # fmt: skip
        if writing:
            writer.flush(120)
            drained_s = time.perf_counter() - began
            with engine.connect() as conn:
                committed = conn.scalar(sa.text("SELECT count(*) FROM usage_records"))
            result |= {"committed": committed, "rows_per_s": committed / drained_s,
                       "pending_at_end_of_load": peak_pending, "drain_after_load_s": drained_s - offered_s}  # fmt: skip
        writer.close(60)
        engine.dispose()
        return result
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rate", type=float, default=20_000, help="rows a second offered")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"writing": [], "idle": []}
    for r in range(args.rounds):
        for name in ("writing", "idle") if r % 2 == 0 else ("idle", "writing"):
            runs[name].append(one_round(args.postgres, args.rate, args.seconds, name == "writing"))
            console.print(f"round {r + 1} {name}: {runs[name][-1]}")
    summary = {
        "rows_per_s": statistics.median(r["rows_per_s"] for r in runs["writing"]),
        "pending_at_end_of_load": statistics.median(r["pending_at_end_of_load"] for r in runs["writing"]),
        "record_us_p50": {k: statistics.median(r["record_us_p50"] for r in v) for k, v in runs.items()},
        "record_us_p99": {k: statistics.median(r["record_us_p99"] for r in v) for k, v in runs.items()},
    }
    console.print(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"args": vars(args), "summary": summary, "runs": runs}
    (RESULTS / "ledger_write_rate.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
