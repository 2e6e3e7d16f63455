"""Shared fixtures: environment isolation, a temp data dir, and apps on fake engines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.config import Settings
from tests.fake_server import FakeHearth
from tests.helpers import REQUIRE_SERVICES, fake_models, fake_settings, wait_ready
from tests.live import LiveServer

__all__ = ["REQUIRE_SERVICES", "fake_models", "fake_settings", "wait_ready"]


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
    app = build_app(settings)
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
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
