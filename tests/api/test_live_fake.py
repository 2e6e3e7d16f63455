"""A real ``hearth serve`` process on fake engines: config files, disconnects and capacity."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import LiveServer

CONFIG = """
models:
  - id: slow-chat
    kind: chat
    backend: fake
    source: "-"
    slots: 1
    max_queue: 4
    options: {token_delay_s: 0.05}
  - id: fake-embed
    kind: embedding
    backend: fake
    source: "-"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    root = tmp_path_factory.mktemp("live-fake")
    config = root / "models.yaml"
    config.write_text(CONFIG)
    with LiveServer(root / "data", "--config", str(config), "--no-auth") as live:
        yield live  # type: ignore[misc]


def test_yaml_config_is_served(server: LiveServer) -> None:
    ids = [m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"]]
    assert ids == ["slow-chat", "fake-embed"]


def test_toml_config_and_env_override(tmp_path: Path) -> None:
    config = tmp_path / "hearth.toml"
    config.write_text('port = 1\n[[models]]\nid = "t"\nkind = "embedding"\nbackend = "fake"\nsource = "-"\n')
    from hearth.config import load_settings

    settings = load_settings(config=config)
    assert [m.id for m in settings.models] == ["t"]
    assert settings.port == 1
    import os

    os.environ["HEARTH_PORT"] = "2"
    try:
        assert load_settings(config=config).port == 2  # the environment beats the file
        assert load_settings(config=config, port=3).port == 3  # and explicit flags beat both
    finally:
        del os.environ["HEARTH_PORT"]


def _long_request() -> dict[str, object]:
    return {"model": "slow-chat", "prompt": "go", "max_tokens": 1000, "stream": True}


def test_stream_disconnect_frees_the_slot_at_once(server: LiveServer) -> None:
    # One slot, 50 ms per token: the abandoned stream alone would hold the slot for 50 s.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/completions", json=_long_request()) as reply:
            assert reply.status_code == 200
            lines = reply.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
        # The connection is closed here, mid-stream.
        started = time.monotonic()
        follow_up = client.post(
            "/v1/completions", json={"model": "slow-chat", "prompt": "next", "max_tokens": 3}
        )
        assert follow_up.status_code == 200
        assert time.monotonic() - started < 3


def test_non_stream_disconnect_frees_the_slot(server: LiveServer) -> None:
    body = {"model": "slow-chat", "prompt": "go", "max_tokens": 1000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", json=body, timeout=0.5)
    started = time.monotonic()
    follow_up = httpx.post(server.url + "/v1/completions", json={**body, "max_tokens": 3}, timeout=30)
    assert follow_up.status_code == 200
    assert time.monotonic() - started < 3


def test_concurrent_streams_queue_for_the_slot(server: LiveServer) -> None:
    import concurrent.futures

    def run(i: int) -> str:
        body = {"model": "slow-chat", "prompt": f"p{i}", "max_tokens": 3, "stream": True}
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=30) as reply:
            return [line for line in reply.iter_lines() if line.startswith("data: ")][-1]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        assert list(pool.map(run, range(3))) == ["data: [DONE]"] * 3


def test_health_answers_and_logs_are_json_free_of_errors(server: LiveServer) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert "Traceback" not in server.logs()
    assert json.loads(httpx.get(server.url + "/ready").text)["status"] == "ready"
