"""The torch worker process inside a real ``hearth serve``: killed, it shows on /ready and comes back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import openai

from hearth.config import default_models
from tests.live import LiveServer

MINILM = [s.model_dump(mode="json") for s in default_models() if s.id == "all-minilm-l6-v2"]


def worker_pids(server_pid: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{server_pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            if "hearth.engines.worker" in Path(f"/proc/{child}/cmdline").read_bytes().decode():
                pids.append(int(child))
    return pids


def test_a_killed_worker_shows_on_ready_and_the_model_comes_back(tmp_path: Path) -> None:
    env = {"HEARTH_MODELS": json.dumps(MINILM)}
    with LiveServer(tmp_path / "data", "--no-auth", env=env, ready_timeout=300) as server:
        assert server.process is not None
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        before = client.embeddings.create(model="all-minilm-l6-v2", input="a cat on a mat").data[0].embedding
        [pid] = worker_pids(server.process.pid)
        os.kill(pid, signal.SIGKILL)
        reasons: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = httpx.get(server.url + "/ready", timeout=5)
            if ready.status_code == 200 and reasons:
                break
            if ready.status_code != 200:
                reasons.append(ready.text)
            time.sleep(0.05)
        assert reasons and "signal 9" in reasons[0] and "loading it again" in reasons[0]
        assert httpx.get(server.url + "/ready", timeout=5).status_code == 200
        [new_pid] = worker_pids(server.process.pid)
        assert new_pid != pid
        after = client.embeddings.create(model="all-minilm-l6-v2", input="a cat on a mat").data[0].embedding
        assert max(abs(a - b) for a, b in zip(before, after, strict=True)) < 1e-5
