"""Settings and apps on fake engines, and waiting for an app to be ready."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from hearth.config import ModelKind, ModelSpec, Settings


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


def wait_ready(client: TestClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready: {client.get('/ready').json()}")
