"""deploy/Caddyfile for real: Caddy (Debian package) in front of a live ``hearth serve``.

Caddy runs as our own subprocess with the shipped Caddyfile (its package's systemd unit plays no
part), on free high ports, with its data dir (and so its internal CA) in a temp dir. The client
trusts only that CA, and checks that a chat stream arrives chunk by chunk through the proxy.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.helpers import DEPLOY, need_command, run
from tests.helpers.live import LiveServer, free_port

CADDYFILE = DEPLOY / "Caddyfile"
TOKEN_DELAY_S = 0.05
FAKE_MODELS = [
    {
        "id": "fake-chat",
        "kind": "chat",
        "backend": "fake",
        "source": "-",
        "options": {"token_delay_s": TOKEN_DELAY_S},
    }
]


def caddy_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTH_", "CADDY_"))}
    env.update(
        XDG_DATA_HOME=str(tmp_path / "caddy-data"),
        XDG_CONFIG_HOME=str(tmp_path / "caddy-config"),
        HOME=str(tmp_path),
        **settings,
    )
    return env


def test_caddyfile_validates(tmp_path: Path) -> None:
    caddy = need_command("caddy")
    result = run(
        caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile", env=caddy_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddyfile_streams_unbuffered_and_uses_env(tmp_path: Path) -> None:
    caddy = need_command("caddy")
    env = caddy_env(tmp_path, HEARTH_DOMAIN="hearth.example.com", HEARTH_TLS="ops@example.com")
    adapted = run(caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile", env=env)
    assert adapted.returncode == 0, adapted.stderr
    config = json.loads(adapted.stdout)
    server = next(iter(config["apps"]["http"]["servers"].values()))
    route = server["routes"][0]
    assert route["match"] == [{"host": ["hearth.example.com"]}]
    proxy = _find(route, "reverse_proxy")
    assert proxy["flush_interval"] == -1  # SSE is never buffered
    assert proxy["dynamic_upstreams"]["name"] == "hearth" and proxy["dynamic_upstreams"]["port"] == "8000"
    issuers = config["apps"]["tls"]["automation"]["policies"][0]["issuers"]
    assert any(i.get("email") == "ops@example.com" for i in issuers)  # ACME for a public domain


def _find(node: object, handler: str) -> dict[str, object]:
    if isinstance(node, dict):
        if node.get("handler") == handler:
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        children = []
    for child in children:
        with contextlib.suppress(LookupError):
            return _find(child, handler)
    raise LookupError(handler)


@pytest.fixture
def hearth_server(tmp_path: Path) -> Iterator[LiveServer]:
    env = {"HEARTH_MODELS": json.dumps(FAKE_MODELS)}
    with LiveServer(tmp_path / "data", "--no-auth", env=env) as server:
        yield server


@dataclass
class Proxy:
    base: str
    http_port: int
    context: ssl.SSLContext


@pytest.fixture
def caddy_proxy(tmp_path: Path, hearth_server: LiveServer) -> Iterator[Proxy]:
    caddy = need_command("caddy")
    https_port, http_port = free_port(), free_port()
    env = caddy_env(
        tmp_path,
        HEARTH_DOMAIN="localhost",
        HEARTH_TLS="internal",
        HEARTH_UPSTREAM_HOST="127.0.0.1",
        HEARTH_UPSTREAM_PORT=str(hearth_server.port),
        CADDY_HTTPS_PORT=str(https_port),
        CADDY_HTTP_PORT=str(http_port),
        CADDY_ADMIN="off",
    )
    log_path = tmp_path / "caddy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    root_crt = tmp_path / "caddy-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    base = f"https://localhost:{https_port}"
    try:
        deadline = time.monotonic() + 60
        context: ssl.SSLContext | None = None
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            if root_crt.exists():
                context = ssl.create_default_context(cafile=str(root_crt))
                with contextlib.suppress(httpx.HTTPError, ssl.SSLError):
                    if httpx.get(base + "/health", verify=context, timeout=2).status_code == 200:
                        break
            time.sleep(0.2)
        else:
            pytest.fail(f"Caddy did not serve {base} in time:\n{log_path.read_text()[-4000:]}")
        assert context is not None
        yield Proxy(base, http_port, context)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_https_streaming_through_caddy_is_incremental(caddy_proxy: Proxy) -> None:
    base, context = caddy_proxy.base, caddy_proxy.context
    max_tokens = 30
    body = {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": "stream please"}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    arrivals: list[float] = []
    with (
        httpx.Client(verify=context, timeout=30) as client,
        client.stream("POST", base + "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "caddy" in response.headers.get("server", "").lower()  # it went through the proxy
        assert response.http_version in {"HTTP/1.1", "HTTP/2"}
        started = time.perf_counter()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                payload = json.loads(line.removeprefix("data: "))
                if payload["choices"] and payload["choices"][0]["delta"].get("content"):
                    arrivals.append(time.perf_counter() - started)
    assert len(arrivals) >= max_tokens * 0.8, arrivals
    spread = arrivals[-1] - arrivals[0]
    # Tokens come every TOKEN_DELAY_S: unbuffered, they arrive spread over the whole stream, not
    # in one burst at the end.
    assert spread >= (len(arrivals) - 1) * TOKEN_DELAY_S * 0.6, arrivals
    halfway = arrivals[0] + spread / 2
    early = sum(1 for t in arrivals if t <= halfway)
    assert early >= len(arrivals) * 0.3, arrivals
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    assert gaps[len(gaps) // 2] >= TOKEN_DELAY_S * 0.5, gaps


def test_plain_http_redirects_and_only_caddys_ca_is_trusted(caddy_proxy: Proxy) -> None:
    assert httpx.get(caddy_proxy.base + "/ready", verify=caddy_proxy.context, timeout=10).status_code == 200
    redirect = httpx.get(f"http://localhost:{caddy_proxy.http_port}/v1/models", timeout=10)
    assert redirect.status_code in {301, 302, 307, 308}
    assert redirect.headers["location"].startswith("https://localhost")
    # A client that does not trust the internal CA is refused: the certificate is really Caddy's.
    with pytest.raises(httpx.ConnectError):
        httpx.get(caddy_proxy.base + "/health", timeout=10)
