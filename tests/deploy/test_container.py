"""The container image, for real: built with podman from deploy/Containerfile, run, restarted.

The base image is Debian from debootstrap (no registry is reachable here); the build reuses the
machine's torch CPU wheel and the cached llama-cpp-python wheel through deploy/wheels/, and
podman's layer cache between runs, so a warm build takes well under a minute and a cold one a
few minutes. Build timings go to test-artifacts/container-build.json.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.helpers import DEPLOY, PODMAN, ROOT, run
from tests.helpers.live import free_port

pytestmark = pytest.mark.container


class Container:
    def __init__(self, image: str, volume: str) -> None:
        self.name = f"hearth-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.image, self.volume = image, volume

    def start(self) -> None:
        result = run(
            *PODMAN,
            "run",
            "-d",
            "--name",
            self.name,
            "--network=host",  # test traffic stays on loopback; users publish with -p 8000:8000
            "-e",
            f"HEARTH_PORT={self.port}",
            "-v",
            f"{self.volume}:/data",
            self.image,
        )
        assert result.returncode == 0, result.stderr

    def logs(self) -> str:
        result = run("podman", "logs", self.name)
        return (result.stdout + result.stderr)[-6000:]

    def wait_ready(self, timeout: float = 300) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            state = run("podman", "inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()
            if state in {"exited", "stopped"}:
                pytest.fail(f"the container stopped ({state}):\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.5)
        pytest.fail(f"not ready in {timeout}s:\n{self.logs()}")

    def exec(self, *args: str) -> str:
        result = run("podman", "exec", self.name, *args, timeout=180)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout


@pytest.fixture
def container(image: str) -> Iterator[Container]:
    volume = f"hearth-test-data-{uuid.uuid4().hex[:8]}"
    assert run("podman", "volume", "create", volume).returncode == 0
    box = Container(image, volume)
    try:
        yield box
    finally:
        run(*PODMAN, "rm", "-f", "-t", "5", box.name, timeout=120)
        run("podman", "volume", "rm", "-f", volume, timeout=120)


def test_image_metadata(image: str) -> None:
    inspected = json.loads(run("podman", "image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert "8000/tcp" in config["ExposedPorts"]
    assert "/data" in config["Volumes"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HEARTH_DATA_DIR"] == "/data" and env["HEARTH_HOST"] == "0.0.0.0"
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck")
    assert "/ready" in " ".join(healthcheck["Test"])
    # Only what serving needs: no compiler in the runtime image.
    result = run(
        *PODMAN, "run", "--rm", "--network=host", image, "sh", "-c", "command -v gcc cc cmake || true"
    )
    assert result.stdout.strip() == ""


def test_serve_key_chat_classify_restart(container: Container) -> None:
    container.start()
    first_ready = container.wait_ready()

    healthcheck = run("podman", "healthcheck", "run", container.name)
    assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr

    secret = container.exec("hearth", "keys", "create", "ci").strip().splitlines()[-1]
    assert secret.startswith("hk-")
    headers = {"Authorization": f"Bearer {secret}"}

    assert httpx.get(container.url + "/v1/models", timeout=10).status_code == 401
    chat = httpx.post(
        container.url + "/v1/chat/completions",
        headers=headers,
        json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8},
        timeout=120,
    )
    assert chat.status_code == 200, chat.text
    assert 0 < chat.json()["usage"]["completion_tokens"] <= 8

    skimage_data = pytest.importorskip("skimage.data")
    chelsea = Path(skimage_data.__file__).parent / "chelsea.png"
    classify = httpx.post(
        container.url + "/v1/classify",
        headers=headers,
        json={"image": base64.b64encode(chelsea.read_bytes()).decode(), "top_k": 3},
        timeout=120,
    )
    assert classify.status_code == 200, classify.text
    labels = " ".join(p["label"] for p in classify.json()["predictions"]).lower()
    assert "cat" in labels, labels

    before = _usage(container, headers)
    assert before["total_tokens"] == chat.json()["usage"]["total_tokens"]

    restart = run("podman", "restart", "-t", "30", container.name, timeout=180)
    assert restart.returncode == 0, restart.stderr
    second_ready = container.wait_ready()
    after = _usage(container, headers)  # the key and the ledger rows live in the volume
    assert after["total_tokens"] == before["total_tokens"]
    assert after["images"] == before["images"] == 1
    print(f"ready after {first_ready:.1f}s, after restart {second_ready:.1f}s")


def _usage(container: Container, headers: dict[str, str]) -> dict[str, Any]:
    """The key's usage once the chat and the classification are in the ledger (one row each)."""
    wanted = {"gemma-3-270m": 1, "efficientnet-lite0": 1}
    deadline = time.monotonic() + 15  # the ledger writer batches off the request path
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(container.url + "/v1/usage", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        per_model = {m["model"]: m["requests"] for m in body["models"] if m["model"] in wanted}
        if per_model == wanted:
            return body
        time.sleep(0.3)
    pytest.fail(f"usage never showed one chat and one classification: {body}")


def test_wheels_dir_is_ignored_by_git() -> None:
    ignored = run("git", "check-ignore", "-q", "deploy/wheels/x.whl", cwd=ROOT)
    assert ignored.returncode == 0 or not (ROOT / ".git").exists()
    assert os.path.exists(DEPLOY / "wheels" / ".gitignore")
