"""The data directory's disk fills up under load (a small tmpfs): answers go on, the operator is
told why the ledger cannot write (``/ready`` and the log say the disk is full), no answered row
is lost, and once space is back the rows are written and SQLite passes its integrity check."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.fake_server import MODELS
from tests.helpers.live import LiveServer

EMBED = {"model": "fake-embed", "input": "a few words"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs (root can mount one; CI runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as full:
        (disk / "one-more").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


def eventually(check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.2)


def test_a_full_disk_loses_no_row_and_recovers(small_disk: Path) -> None:
    env = {"HEARTH_MODELS": MODELS}
    server = LiveServer(small_disk, "--no-auth", env=env).start()
    answered: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(10):
                reply = http.post("/v1/embeddings", json=EMBED)
                assert reply.status_code == 200
                answered.append(reply.headers["x-request-id"])
            filler = fill(small_disk)
            for _ in range(40):
                reply = http.post("/v1/embeddings", json=EMBED)
                assert reply.status_code in (200, 503), reply.text  # never a 500
                if reply.status_code == 200:
                    answered.append(reply.headers["x-request-id"])
            assert len(answered) == 50  # answering needs no disk

            def told() -> bool:
                ready = http.get("/ready")
                return ready.status_code == 503 and "full" in ready.text

            eventually(told)
            server.wait_for_log("database or disk is full")
            os.unlink(filler)
            eventually(lambda: http.get("/ready").status_code == 200)
    finally:
        # A clean shutdown drains what is queued (with the disk still full it would wait its
        # drain timeout, keep the journal, and say how many rows it could not write).
        assert server.stop() in (0, -15)  # uvicorn exits by the signal it drained on
    assert "unwritten" not in server.logs()
    with sqlite3.connect(small_disk / "hearth.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = {r[0] for r in conn.execute("SELECT request_id FROM usage_records")}
    assert not set(answered) - rows, f"{len(set(answered) - rows)} answered requests have no row"
