"""The admin key is rotated without a restart, on every replica sharing the database: the new key
works at once everywhere, the old one stops working on each replica within its refresh, and the
rotation outlives a restart with the old configured key (an operator's new key takes over)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.gateway.auth import AdminSecret
from tests.helpers.apps import fake_settings, wait_ready

FIRST = "hk-admin-the-first-configured-key"


@pytest.fixture(autouse=True)
def quick_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AdminSecret, "REFRESH_S", 0.3)


def replica(tmp_path: Path, name: str, database: str, admin_key: str | None) -> TestClient:
    settings = fake_settings(tmp_path / name, no_auth=False, admin_key=admin_key, database_url=database)
    return TestClient(build_app(settings))


def status(client: TestClient, secret: str) -> int:
    return client.get("/admin/keys", headers={"Authorization": f"Bearer {secret}"}).status_code


def eventually(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the refresh"
        time.sleep(0.05)


@pytest.fixture
def database(server_database: str) -> str:
    return server_database


@pytest.fixture
def pair(tmp_path: Path, database: str) -> Iterator[tuple[TestClient, TestClient]]:
    with ExitStack() as stack:
        clients = [stack.enter_context(replica(tmp_path, n, database, FIRST)) for n in ("a", "b")]
        for client in clients:
            wait_ready(client)
        yield clients[0], clients[1]


def test_a_rotation_reaches_every_replica_without_a_restart(pair: tuple[TestClient, TestClient]) -> None:
    a, b = pair
    assert status(a, FIRST) == status(b, FIRST) == 200
    reply = a.post("/admin/admin-key/rotate", headers={"Authorization": f"Bearer {FIRST}"})
    assert reply.status_code == 200, reply.text
    new = reply.json()["secret"]
    assert new.startswith("hk-admin-") and new != FIRST
    assert status(a, new) == 200 and status(a, FIRST) == 401  # at once where it was rotated
    eventually(lambda: status(b, new) == 200, timeout=2)  # a miss reads the database again
    eventually(lambda: status(b, FIRST) == 401)
    error = b.get("/admin/keys", headers={"Authorization": f"Bearer {FIRST}"}).json()["error"]
    assert "incorrect admin key" in error["message"] and FIRST not in str(error) and new not in str(error)


def test_a_rotation_outlives_a_restart_with_the_old_configured_key(tmp_path: Path, database: str) -> None:
    with replica(tmp_path, "a", database, FIRST) as a:
        wait_ready(a)
        new = a.post("/admin/admin-key/rotate", headers={"Authorization": f"Bearer {FIRST}"}).json()["secret"]
    with replica(tmp_path, "a", database, FIRST) as again:  # HEARTH_ADMIN_KEY unchanged
        wait_ready(again)
        assert status(again, new) == 200 and status(again, FIRST) == 401
    chosen = "hk-admin-the-operator-chose-another"
    with replica(tmp_path, "a", database, chosen) as changed:  # the operator configured a new key
        wait_ready(changed)
        assert status(changed, chosen) == 200 and status(changed, new) == 401


def test_a_bootstrap_key_is_rotated_and_its_file_removed(tmp_path: Path, database: str) -> None:
    with replica(tmp_path, "a", database, None) as a:
        wait_ready(a)
        key_file = tmp_path / "a" / "data" / "admin.key"
        first = key_file.read_text().strip()
        assert status(a, first) == 200
        new = a.post("/admin/admin-key/rotate", headers={"Authorization": f"Bearer {first}"}).json()["secret"]
        assert status(a, new) == 200 and status(a, first) == 401
        assert not key_file.exists()  # it would lie


def test_rotating_needs_the_admin_key(pair: tuple[TestClient, TestClient]) -> None:
    a, _ = pair
    assert a.post("/admin/admin-key/rotate").status_code == 401
    assert a.post("/admin/admin-key/rotate", headers={"Authorization": "Bearer hk-nope"}).status_code == 401
    assert status(a, FIRST) == 200
