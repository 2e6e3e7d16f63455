"""Run ``hearth serve`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``hearth serve`` on a free loopback port; logs go to ``log_path`` for inspection."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        ready_timeout: float = 120,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.args = args
        self.extra_env = env or {}
        self.ready_timeout = ready_timeout
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None

    def start(self) -> LiveServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env.update({"HEARTH_DATA_DIR": str(self.data_dir), "HF_HUB_OFFLINE": "1", **self.extra_env})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hearth.cli", "serve", "--port", str(self.port), *self.args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hearth serve exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    self.ready_seconds = time.perf_counter() - started
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"hearth serve was not ready in {self.ready_timeout}s:\n{self.logs()}")

    def create_key(self, admin_key: str, name: str, **limits: object) -> str:
        """A new API key made through ``/admin/keys``; returns its secret."""
        reply = httpx.post(
            self.url + "/admin/keys",
            json={"name": name, **limits},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert reply.status_code == 201, reply.text
        return str(reply.json()["secret"])

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of ``pattern`` in the log; the banner is printed just after /ready answers."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.logs(), re.MULTILINE)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the server log:\n{self.logs()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
