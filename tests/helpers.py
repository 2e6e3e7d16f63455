"""What tests share: fake-engine settings, readiness, request helpers and assertions.

Fixtures live in the conftest files; everything a test module imports comes from here (or from
``tests.live`` for running ``hearth serve``, ``tests.services`` for PostgreSQL and Redis).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from hearth.config import ModelKind, ModelSpec, Settings

REQUIRE_SERVICES = os.environ.get("HEARTH_REQUIRE_SERVICES") == "1"
ADMIN = "admin-secret-for-tests"
MakeKey = Callable[..., str]


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


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def flush_ledger(client: TestClient) -> None:
    assert client.app.state.root.database.ledger.flush(10)  # type: ignore[attr-defined]


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def png_bytes(color: tuple[int, int, int] = (200, 100, 50)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_envelope(reply: object, status: int, code: str | None = None) -> dict[str, object]:
    assert reply.status_code == status, reply.text  # type: ignore[attr-defined]
    error = reply.json()["error"]  # type: ignore[attr-defined]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]
