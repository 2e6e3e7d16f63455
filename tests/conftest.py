"""Shared fixtures: environment isolation, a temp data dir, and apps on fake engines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.config import ModelKind, ModelSpec, Settings
from tests.live import LiveServer

REQUIRE_SERVICES = os.environ.get("HEARTH_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's HEARTH_* settings or writes to their data dir."""
    for name in list(os.environ):
        if name.startswith("HEARTH_") and name != "HEARTH_REQUIRE_SERVICES":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def fake_models(**chat_overrides: object) -> list[ModelSpec]:
    chat = {"id": "fake-chat", "kind": ModelKind.CHAT, "backend": "fake", "source": "-", "aliases": ["fc"]}
    return [
        ModelSpec.model_validate({**chat, **chat_overrides}),
        ModelSpec(id="fake-embed", kind=ModelKind.EMBEDDING, backend="fake", source="-"),
        ModelSpec(id="fake-vision", kind=ModelKind.IMAGE_CLASSIFICATION, backend="fake", source="-"),
    ]


def fake_settings(tmp_path: Path, **overrides: object) -> Settings:
    chat = overrides.pop("chat", {})
    assert isinstance(chat, dict)
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "models": fake_models(**chat),
        "no_auth": True,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = build_app(settings)
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client


def wait_ready(client: TestClient, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready: {client.get('/ready').json()}")


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("real")
    with LiveServer(root / "data", "--no-auth", ready_timeout=300) as server:
        yield server
