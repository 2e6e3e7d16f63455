"""``kill -9`` in the middle of ledger writes, on SQLite: the database opens clean (integrity
check), the server starts again on it, and with HEARTH_LEDGER_DURABLE every request that was
answered has its row."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.helpers.fake_server import MODELS
from tests.helpers.live import LiveServer

EMBED = {"model": "fake-embed", "input": "a few words"}


def test_kill_9_during_ledger_writes(tmp_path: Path) -> None:
    env = {"HEARTH_MODELS": MODELS, "HEARTH_LEDGER_DURABLE": "1"}
    answered: list[str] = []
    server = LiveServer(tmp_path / "data", "--no-auth", env=env).start()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while not stop.is_set():
                try:
                    reply = http.post("/v1/embeddings", json=EMBED)
                except httpx.HTTPError:
                    return  # the server is gone
                if reply.status_code == 200:
                    answered.append(reply.headers["x-request-id"])

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 60
    while len(answered) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in clients:
        thread.join(15)
    assert len(answered) >= 150

    database = tmp_path / "data" / "hearth.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = {r[0] for r in conn.execute("SELECT request_id FROM usage_records")}
    assert not set(answered) - rows, f"{len(set(answered) - rows)} answered requests have no row"

    with LiveServer(tmp_path / "data", "--no-auth", env=env) as again:  # it starts on that database
        assert httpx.post(again.url + "/v1/embeddings", json=EMBED).status_code == 200
