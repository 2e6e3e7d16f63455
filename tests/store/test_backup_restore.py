"""``hearth db backup`` and ``hearth db restore`` for real, on SQLite and on PostgreSQL.

A live ``hearth serve`` (fake engines) gets keys, usage rows and stored Responses-API
responses; the backup is taken while a second key keeps the server writing; the copy is
restored into a fresh data dir (SQLite) or a fresh database (PostgreSQL, with the real
``pg_dump`` and ``pg_restore``), and a new server on it must authenticate the keys, add the
usage up to the same totals and serve the stored responses again by ``GET /v1/responses/{id}``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.keys import bearer
from tests.helpers.live import LiveServer
from tests.helpers.services import postgres_url

ADMIN = "admin-secret-for-backup-tests"
CONFIG = """
models:
  - id: fake-chat
    kind: chat
    backend: fake
    source: "-"
"""
CHATS = 5


def hearth(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "200", **env},
        timeout=120,
    )


def admin_usage(server: LiveServer, key: str) -> dict[str, Any]:
    reply = httpx.get(server.url + "/admin/usage", params={"key": key}, headers=bearer(ADMIN), timeout=10)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def settle(server: LiveServer, key: str, requests: int) -> dict[str, Any]:
    """The key's usage once the ledger writer has committed ``requests`` rows for it."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        usage = admin_usage(server, key)
        if usage["requests"] == requests:
            return usage
        time.sleep(0.1)
    raise AssertionError(f"{key}: {admin_usage(server, key)['requests']} rows, expected {requests}")


@dataclass
class Snapshot:
    secrets: dict[str, str]
    usage: dict[str, Any]
    responses: dict[str, dict[str, Any]]


def make_data(server: LiveServer) -> Snapshot:
    alice = server.create_key(ADMIN, "alice", rpm=1000)
    bob = server.create_key(ADMIN, "bob")
    with httpx.Client(base_url=server.url, headers=bearer(alice), timeout=30) as client:
        for i in range(CHATS):
            chat = client.post(
                "/v1/chat/completions",
                json={
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": f"q {i}"}],
                    "max_tokens": 8,
                },
            )
            assert chat.status_code == 200, chat.text
        responses = {}
        for text in ("first stored answer", "second stored answer"):
            created = client.post(
                "/v1/responses",
                json={"model": "fake-chat", "input": text, "store": True, "max_output_tokens": 16},
            )
            assert created.status_code == 200, created.text
            got = client.get(f"/v1/responses/{created.json()['id']}")
            assert got.status_code == 200 and got.json()["output"][0]["content"][0]["text"], got.text
            responses[got.json()["id"]] = got.json()
    usage = settle(server, "alice", CHATS + 2 * len(responses))
    assert usage["total_tokens"] > 0
    return Snapshot({"alice": alice, "bob": bob}, usage, responses)


class Writer:
    """Keeps the server writing (chats and stored responses under bob) until stopped."""

    def __init__(self, server: LiveServer, secret: str) -> None:
        self.secret = secret
        self.url = server.url
        self.done = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=bearer(self.secret), timeout=30) as client:
            while not self.stop.is_set():
                body = {
                    "model": "fake-chat",
                    "input": f"w {self.done}",
                    "store": True,
                    "max_output_tokens": 8,
                }
                assert client.post("/v1/responses", json=body).status_code == 200
                self.done += 1

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def backup_restore_round_trip(tmp_path: Path, source_env: dict[str, str], target_env: dict[str, str]) -> str:
    """The whole procedure; returns the backup command's output."""
    config = tmp_path / "models.yaml"
    config.write_text(CONFIG)
    common = {"HEARTH_ADMIN_KEY": ADMIN, "HEARTH_CONFIG": str(config)}
    source_env, target_env = {**common, **source_env}, {**common, **target_env}
    backup_file = tmp_path / "hearth.backup"
    with LiveServer(Path(source_env["HEARTH_DATA_DIR"]), env=source_env) as live:
        snapshot = make_data(live)
        with Writer(live, snapshot.secrets["bob"]) as writer:
            while writer.done < 3:  # the writer is really writing when the backup starts
                time.sleep(0.01)
            before = writer.done
            backed_up = hearth(source_env, "db", "backup", str(backup_file))
            during = writer.done - before
        assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
        assert during > 0, "the writer made no request while the backup ran"
        # A restore over the database a server is using is refused, and changes nothing.
        refused = hearth(source_env, "db", "restore", str(backup_file))
        assert refused.returncode == 1 and "running hearth" in refused.stdout, refused.stdout
        assert (
            httpx.get(live.url + "/v1/models", headers=bearer(snapshot.secrets["alice"])).status_code == 200
        )
        written_by_bob = admin_usage(live, "bob")["requests"]

    restored = hearth(target_env, "db", "restore", str(backup_file))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    with LiveServer(Path(target_env["HEARTH_DATA_DIR"]), env=target_env) as copy:
        # Usage first: reading it through the admin API adds no rows.
        usage = admin_usage(copy, "alice")
        assert {k: usage[k] for k in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")} == {
            k: snapshot.usage[k] for k in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
        }
        assert usage["models"] == snapshot.usage["models"]
        # Bob's rows from while the backup ran: some, and no more than the source ended with.
        assert 0 < admin_usage(copy, "bob")["requests"] <= written_by_bob
        alice = bearer(snapshot.secrets["alice"])
        assert httpx.get(copy.url + "/v1/models", headers=alice).status_code == 200
        assert httpx.get(copy.url + "/v1/models", headers=bearer("hk-not-a-key")).status_code == 401
        for response_id, stored in snapshot.responses.items():
            again = httpx.get(copy.url + f"/v1/responses/{response_id}", headers=alice, timeout=10)
            assert again.status_code == 200, again.text
            assert again.json() == stored
        keys = {k["name"] for k in httpx.get(copy.url + "/admin/keys", headers=bearer(ADMIN)).json()["data"]}
        assert keys == {"alice", "bob"}
    return backed_up.stdout


def test_sqlite_backup_while_writing_and_restore_into_a_fresh_data_dir(tmp_path: Path) -> None:
    out = backup_restore_round_trip(
        tmp_path,
        {"HEARTH_DATA_DIR": str(tmp_path / "live" / "data")},
        {"HEARTH_DATA_DIR": str(tmp_path / "restored" / "data")},
    )
    assert "backup written" in out


def test_restore_refuses_a_file_that_is_not_a_hearth_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    env = {"HEARTH_DATA_DIR": str(tmp_path / "data")}
    result = hearth(env, "db", "restore", str(junk))
    assert result.returncode == 1 and "not a SQLite database" in result.stdout
    assert hearth(env, "db", "restore", str(tmp_path / "missing.db")).returncode == 1


@pytest.fixture
def two_databases() -> Iterator[tuple[str, str]]:
    """Two new, empty PostgreSQL databases (created and dropped here)."""
    import sqlalchemy as sa

    base = postgres_url()
    names = [f"hearth_bk_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield tuple(base.rsplit("/", 1)[0] + f"/{name}" for name in names)  # type: ignore[misc]
    finally:
        with engine.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def test_postgres_pg_dump_while_writing_and_pg_restore_into_a_fresh_database(
    tmp_path: Path, two_databases: tuple[str, str]
) -> None:
    source, target = two_databases
    out = backup_restore_round_trip(
        tmp_path,
        {"HEARTH_DATA_DIR": str(tmp_path / "live" / "data"), "HEARTH_DATABASE_URL": source},
        {"HEARTH_DATA_DIR": str(tmp_path / "restored" / "data"), "HEARTH_DATABASE_URL": target},
    )
    assert "backup written" in out
    assert (tmp_path / "hearth.backup").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
