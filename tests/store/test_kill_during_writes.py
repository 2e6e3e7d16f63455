"""``kill -9`` in the middle of ledger writes, with the default settings, on SQLite and on
PostgreSQL: the database opens clean (SQLite's integrity check), the server starts again on it,
every request that was answered has exactly one row, and every stream the kill cut short has an
unbilled row of its own (docs/reliability.md)."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa

from hearth.store.journal import CRASHED
from tests.helpers.fake_server import MODELS
from tests.helpers.live import LiveServer

EMBED = {"model": "fake-embed", "input": "a few words"}
# 20 tokens a second: a stream or two is under way when the kill comes.
STREAM = {
    "model": "slow-chat",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
    "max_tokens": 30,
}


def test_kill_9_during_ledger_writes(tmp_path: Path, server_database: str) -> None:
    database_url = server_database
    env = {"HEARTH_MODELS": MODELS, "HEARTH_DATABASE_URL": database_url}
    answered: list[str] = []
    cut: list[str] = []  # streams that began and never ended
    server = LiveServer(tmp_path / "data", "--no-auth", env=env).start()
    stop = threading.Event()

    def embedder() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while not stop.is_set():
                try:
                    reply = http.post("/v1/embeddings", json=EMBED)
                except httpx.HTTPError:
                    return  # the server is gone
                if reply.status_code == 200:
                    answered.append(reply.headers["x-request-id"])

    def streamer() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while not stop.is_set():
                request_id = None
                try:
                    with http.stream("POST", "/v1/chat/completions", json=STREAM) as reply:
                        request_id = reply.headers["x-request-id"]
                        events = [line for line in reply.iter_lines() if line.startswith("data: ")]
                    if events[-1:] != ["data: [DONE]"]:
                        raise httpx.RemoteProtocolError("the stream ended without its end")
                except httpx.HTTPError:
                    if request_id is not None:
                        cut.append(request_id)
                    return
                answered.append(request_id)

    clients = [threading.Thread(target=embedder) for _ in range(3)] + [
        threading.Thread(target=streamer) for _ in range(2)
    ]
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

    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with LiveServer(tmp_path / "data", "--no-auth", env=env) as again:  # it starts on that database
        assert httpx.post(again.url + "/v1/embeddings", json=EMBED).status_code == 200
        again.wait_for_log("replayed")
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT request_id, status_code, error_type, total_tokens FROM usage_records")
        )
        found = {r.request_id: r for r in rows}
        counts = Counter(conn.scalars(sa.text("SELECT request_id FROM usage_records")))
    engine.dispose()
    missing = set(answered) - set(found)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no row"
    assert all(counts[request_id] == 1 for request_id in answered)  # none twice
    assert all(found[r].status_code == 200 for r in answered)
    for request_id in cut:  # cut short by the kill: recorded, not billed
        row = found[request_id]
        # (or its row was journaled just before the end, which the kill then stopped)
        assert (row.status_code, row.error_type, row.total_tokens) == (
            500,
            CRASHED,
            0,
        ) or row.status_code == 200
