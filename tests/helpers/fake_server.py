"""A live ``hearth serve`` on fake engines, with keys, for the client, CLI and example tests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live import LiveServer
from tests.helpers.services import REQUIRE_SERVICES

ADMIN = "admin-secret-clients"
MODELS = json.dumps(
    [
        {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-"},
        # 20 tokens take a second: long enough to watch a stream arrive, or to hold a slot.
        {
            "id": "slow-chat",
            "kind": "chat",
            "backend": "fake",
            "source": "-",
            "options": {"token_delay_s": 0.05},
        },
        {"id": "fake-embed", "kind": "embedding", "backend": "fake", "source": "-"},
        {"id": "fake-vision", "kind": "image-classification", "backend": "fake", "source": "-"},
    ]
)


class FakeHearth:
    """``hearth serve`` with API keys on: four fake models, and an admin key to make keys with."""

    def __init__(self, root: Path) -> None:
        self.server = LiveServer(root / "data", env={"HEARTH_MODELS": MODELS, "HEARTH_ADMIN_KEY": ADMIN})
        self.url = self.server.url

    def start(self) -> FakeHearth:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def create_key(self, name: str, **limits: object) -> str:
        reply = httpx.post(
            self.url + "/admin/keys",
            json={"name": name, **limits},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert reply.status_code == 201, reply.text
        return str(reply.json()["secret"])


def hearth_command() -> list[str]:
    """The installed ``hearth`` program (the console script), as users run it."""
    script = Path(sys.executable).parent / "hearth"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hearth.cli"]


def run_hearth(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    clean.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [*hearth_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def need_program(name: str) -> str:
    """The path of a program the test drives; missing, it fails under HEARTH_REQUIRE_SERVICES=1."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (HEARTH_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return path


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A plain HTTP server for a folder, for image URLs."""
    handler = functools.partial(_QuietFiles, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
