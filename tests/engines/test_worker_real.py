"""The torch worker process inside a real ``hearth serve``: killed, it shows on /ready and comes back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import openai
import pytest

from hearth.config import default_models
from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

# MiniLM on sentence-transformers (the default serves it on llama.cpp): torch and transformers in
# the worker, the heaviest thing it holds.
MINILM = [
    {**s.model_dump(mode="json"), "backend": "sentence-transformers"}
    for s in default_models()
    if s.id == "all-minilm-l6-v2"
]


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


def rss_mb(pid: int) -> float:
    """Resident memory of the server and its model worker."""
    pids = [pid, *worker_pids(pid)]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def test_unloading_the_last_torch_model_gives_its_memory_back(tmp_path: Path) -> None:
    smollm = [
        {**s.model_dump(mode="json"), "image_model": None}
        for s in default_models()
        if s.id == "smollm2-135m-instruct"
    ]
    admin = {"Authorization": "Bearer admin-secret-worker"}
    env = {"HEARTH_MODELS": json.dumps(smollm), "HEARTH_ADMIN_KEY": "admin-secret-worker"}
    with LiveServer(tmp_path / "data", "--no-auth", env=env, ready_timeout=300) as server:
        assert server.process is not None
        pid = server.process.pid
        before = rss_mb(pid)
        loaded = httpx.post(server.url + "/admin/models", json=MINILM[0], headers=admin, timeout=300)
        assert loaded.status_code == 201, loaded.text
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        assert len(client.embeddings.create(model="all-minilm-l6-v2", input=["hi"] * 32).data) == 32
        with_model = rss_mb(pid)
        [worker] = worker_pids(pid)
        gone = httpx.delete(server.url + "/admin/models/all-minilm-l6-v2", headers=admin, timeout=60)
        assert gone.status_code == 200, gone.text
        deadline = time.monotonic() + 30
        while worker_pids(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        after = rss_mb(pid)
        print(f"resident MB: {before:.0f} before, {with_model:.0f} with MiniLM, {after:.0f} after unloading")
        assert (
            not Path(f"/proc/{worker}").exists() or "State:\tZ" in Path(f"/proc/{worker}/status").read_text()
        )
        assert with_model - before > 150  # torch, transformers and the model, in the worker
        assert after - before < 40  # all of it back, not just the weights
