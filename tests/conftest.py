"""Shared fixtures: environment isolation, a temp data dir, apps on fake engines (without keys,
and with keys and an admin key), and the live servers several test folders share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.config import Settings
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.fake_server import FakeHearth
from tests.helpers.keys import ADMIN, MakeKey, admin_headers
from tests.helpers.live import LiveServer
from tests.helpers.services import drop_postgres_schema, fresh_postgres_schema_url
from tests.helpers.spec_check import SpecCheck


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's HEARTH_* settings or writes to their data dir."""
    for name in list(os.environ):
        if name.startswith("HEARTH_") and name != "HEARTH_REQUIRE_SERVICES":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An app on fake engines without keys (``--no-auth``), whose every answer is checked
    against its family's published description (tests/helpers/spec_check.py)."""
    app = build_app(settings)
    app.add_middleware(SpecCheck)
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def gw_app(tmp_path: Path) -> Any:
    """An app on fake engines with keys on and a known admin key (not started)."""
    app = build_app(fake_settings(tmp_path, no_auth=False, admin_key=ADMIN))
    app.add_middleware(SpecCheck)
    return app


@pytest.fixture
def gw(gw_app: Any) -> Iterator[TestClient]:
    with TestClient(gw_app) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def make_key(gw: TestClient) -> MakeKey:
    """Make a key through the admin API; returns its secret."""

    def make(name: str, **limits: Any) -> str:
        reply = gw.post("/admin/keys", json={"name": name, **limits}, headers=admin_headers())
        assert reply.status_code == 201, reply.text
        secret: str = reply.json()["secret"]
        return secret

    return make


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One ``hearth serve --no-auth`` on the real default models, for the real-model tests."""
    root = tmp_path_factory.mktemp("real")
    with LiveServer(root / "data", "--no-auth", ready_timeout=300) as server:
        yield server


@pytest.fixture(scope="session")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHearth]:
    """One live fake-engine server for the client and CLI tests."""
    server = FakeHearth(tmp_path_factory.mktemp("clients")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_key(hearth: FakeHearth) -> str:
    return hearth.create_key("clients-default")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for servers under test, once SQLite (a file of its own) and once
    PostgreSQL (a fresh schema, dropped after)."""
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        yield f"sqlite:///{tmp_path / 'db' / 'hearth.db'}"
        return
    url, schema = fresh_postgres_schema_url()
    yield url
    drop_postgres_schema(schema)
