"""What a durable ledger costs: request rates with the default journal (each usage row appended
to a local file before its answer goes out, ``HEARTH_LEDGER_DURABLE=1``), with each row committed
before its answer (``HEARTH_LEDGER_COMMIT_WAIT=1``), against rows only batched in the background
(``HEARTH_LEDGER_DURABLE=0``, the anchor).

The default ``hearth serve`` (auth on, SQLite ledger, or PostgreSQL with ``--postgres``), fresh
for each round, the three settings in rotating order each round. The load is the one with the most
requests a second, and so the most ledger rows: 32 ``wrk`` clients on ``/v1/embeddings`` (one
short text each), then one client alone (whose every request waits for its own commit).

    .venv/bin/python -m bench.ledger_durability [--rounds 3] [--seconds 8] [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from bench.common import RESULTS, free_port, require, start_default_hearth, stop, wait_http
from bench.embeddings_bench import wrk_load

console = Console()


@contextlib.contextmanager
def fresh_database(server_url: str | None) -> Iterator[str | None]:
    """A new, empty PostgreSQL database on that server for one round (dropped after), or None."""
    if server_url is None:
        yield None
        return
    name = f"hearth_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


MODES = {
    "journal": {"HEARTH_LEDGER_DURABLE": "1"},
    "commit": {"HEARTH_LEDGER_DURABLE": "1", "HEARTH_LEDGER_COMMIT_WAIT": "1"},
    "background": {"HEARTH_LEDGER_DURABLE": "0"},
}


def one_round(mode: str, seconds: float, postgres: str | None) -> dict[str, float]:
    with fresh_database(postgres) as database:
        return _round(mode, seconds, database)


def _round(mode: str, seconds: float, database: str | None) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="hearth-ledger-"))
    env = dict(MODES[mode])
    if database:
        env["HEARTH_DATABASE_URL"] = database
    process, base, key = start_default_hearth(work, free_port(), env=env)
    try:
        wait_http(base + "/ready")
        wrk_load(base, 32, 2, key)  # warm-up
        crowd = wrk_load(base, 32, seconds, key)
        alone = wrk_load(base, 1, seconds, key)
    finally:
        stop(process)
    return {"32_clients": crowd, "1_client": alone}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL for the ledger (default: SQLite)")
    args = parser.parse_args()
    require("wrk", "a load generator that costs little CPU", "apt-get install -y wrk")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    order = list(MODES)
    for r in range(args.rounds):
        for name in order[r % 3 :] + order[: r % 3]:
            console.print(f"round {r + 1}: {name} ...")
            runs[name].append(one_round(name, args.seconds, args.postgres))
    summary: dict[str, Any] = {}
    table = Table("ledger", "32 clients (req/s)", "1 client (req/s)", title="durable ledger")
    for name, rounds in runs.items():
        summary[name] = {
            load: statistics.median(r[load] for r in rounds) for load in ("32_clients", "1_client")
        }
        table.add_row(name, f"{summary[name]['32_clients']:.1f}", f"{summary[name]['1_client']:.1f}")
    ratios = {
        f"{mode}/{load}": [d[load] / b[load] for d, b in zip(runs[mode], runs["background"], strict=True)]
        for mode in ("journal", "commit")
        for load in ("32_clients", "1_client")
    }
    console.print(table)
    for name, values in ratios.items():
        console.print(f"{name}: / background per round {[round(v, 3) for v in values]}, "
                      f"median {statistics.median(values):.3f}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"args": vars(args), "summary": summary, "ratios": ratios, "runs": runs}
    (RESULTS / "ledger_durability.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
