"""deploy/compose.yaml started for real: ``podman-compose up`` of the ``ha`` profile.

PostgreSQL, Redis, two Hearth replicas of the locally built image and Caddy, on podman's bridge
network (service names resolve through its DNS plugin; Caddy's ports are published on free host
ports). No registry is reachable here, so PostgreSQL, Redis and Caddy are stand-ins built from
Debian's packages (tests/deploy/standins/) and given to the file through its image variables;
the Hearth image is the one tests/deploy/test_container.py builds (one build per session).

podman here runs without systemd, so podman's timers never run the healthchecks by themselves:
a thread runs ``podman healthcheck run`` for every container, which is what those timers would
do, and ``depends_on: condition: service_healthy`` then holds as written.

One up and one down, for the whole module: a keyed chat request goes through Caddy, both
replicas serve (each answers ``/ready`` on its own address) and share one ledger in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.helpers import DEPLOY, PODMAN, run, tool, unavailable
from tests.helpers.live import free_port

pytestmark = pytest.mark.container

STANDINS = Path(__file__).parent / "standins"
ADMIN = "compose-admin-" + uuid.uuid4().hex


def podman_compose() -> str:
    """The dev extra's podman-compose, else the deployment tools' venv (tests/deploy/helpers.py)."""
    beside = Path(sys.executable).parent / "podman-compose"
    return str(beside) if beside.exists() else shutil.which("podman-compose") or tool("podman-compose")


@pytest.fixture(scope="session")
def standins() -> dict[str, str]:
    images = {}
    for name in ("postgres", "redis", "caddy"):
        tag = f"localhost/hearth-standin-{name}:test"
        built = run(
            *PODMAN,
            "build",
            "--network=host",
            "--layers",
            "-f",
            str(STANDINS / f"{name}.Containerfile"),
            "-t",
            tag,
            str(STANDINS),
            timeout=900,
        )
        if built.returncode != 0:
            unavailable(f"could not build the {name} stand-in: {(built.stdout + built.stderr)[-3000:]}")
        images[name] = tag
    return images


class HealthChecks(threading.Thread):
    """Runs each container's healthcheck every second, as podman's systemd timers would."""

    def __init__(self, project: str) -> None:
        super().__init__(daemon=True)
        self.project, self.stopped = project, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1):
            listed = run("podman", "ps", "-q", "--filter", f"label=io.podman.compose.project={self.project}")
            for container in listed.stdout.split():
                run("podman", "healthcheck", "run", container, timeout=30)


class Stack:
    def __init__(self, project: str, env: dict[str, str], https_port: int) -> None:
        self.project, self.env = project, env
        self.url = f"https://localhost:{https_port}"
        self.verify: ssl.SSLContext | bool = True

    def compose(self, *args: str, timeout: float = 600) -> str:
        command = [podman_compose(), "-p", self.project, "-f", str(DEPLOY / "compose.yaml"), *args]
        result = run(*command, timeout=timeout, cwd=DEPLOY, env=self.env)
        assert result.returncode == 0, f"{' '.join(args)}: {(result.stdout + result.stderr)[-4000:]}"
        return result.stdout

    def containers(self, service: str) -> list[str]:
        listed = run(
            "podman",
            "ps",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=io.podman.compose.service={service}",
            "--format",
            "{{.Names}}",
        )
        return sorted(listed.stdout.split())

    def inside(self, container: str, path: str) -> Any:
        """GET http://127.0.0.1:8000{path} from inside one replica, with the admin key."""
        script = (
            "import json, urllib.request as u; r = u.Request('http://127.0.0.1:8000' + __import__('sys').argv[1],"
            f" headers={{'Authorization': 'Bearer {ADMIN}'}}); b = u.urlopen(r, timeout=10).read().decode();"
            " print(b)"
        )
        result = run("podman", "exec", container, "python", "-c", script, path, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def ready(self, container: str) -> bool:
        script = "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/ready', timeout=5)"
        return run("podman", "exec", container, "python", "-c", script, timeout=60).returncode == 0

    def logs(self) -> str:
        names = run(
            "podman",
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--format",
            "{{.Names}}",
        )
        return "\n".join(
            f"--- {name}\n" + (lambda r: (r.stdout + r.stderr)[-2500:])(run("podman", "logs", name))
            for name in names.stdout.split()
        )


@pytest.fixture(scope="module")
def stack(image: str, standins: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    podman_compose()
    project = f"hearthtest{uuid.uuid4().hex[:8]}"
    https_port = free_port()
    password = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(
        COMPOSE_PROFILES="ha",
        HEARTH_REPLICAS="2",
        HEARTH_DATA_MOUNT="/data",
        POSTGRES_PASSWORD=password,
        HEARTH_DATABASE_URL=f"postgresql+psycopg://hearth:{password}@postgres:5432/hearth",
        HEARTH_REDIS_URL="redis://redis:6379/0",
        HEARTH_ADMIN_KEY=ADMIN,
        HEARTH_LOG_FORMAT="json",
        HEARTH_IMAGE=image,
        HEARTH_POSTGRES_IMAGE=standins["postgres"],
        HEARTH_REDIS_IMAGE=standins["redis"],
        HEARTH_CADDY_IMAGE=standins["caddy"],
        HEARTH_HTTP_PORT=str(free_port()),
        HEARTH_HTTPS_PORT=str(https_port),
    )
    box = Stack(project, env, https_port)
    checks = HealthChecks(project)
    checks.start()
    started = time.monotonic()
    try:
        box.compose("up", "-d", "--no-build", timeout=900)
        box.verify = wait_for_caddy(box)
        print(f"compose ha profile up and serving through Caddy in {time.monotonic() - started:.0f}s")
        yield box
    except BaseException:
        print(box.logs())
        raise
    finally:
        checks.stopped.set()
        with contextlib.suppress(AssertionError, OSError):
            box.compose("down", "-v", "-t", "40", timeout=600)


def wait_for_caddy(box: Stack, timeout: float = 420) -> ssl.SSLContext:
    """Caddy's internal CA (read from its container), once Caddy answers /ready over HTTPS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        caddies = box.containers("caddy")
        root = run("podman", "exec", *caddies[:1], "cat", "/data/caddy/pki/authorities/local/root.crt")
        if caddies and root.returncode == 0 and "BEGIN CERTIFICATE" in root.stdout:
            context = ssl.create_default_context(cadata=root.stdout)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(box.url + "/ready", verify=context, timeout=5).status_code == 200:
                    return context
        time.sleep(2)
    pytest.fail(f"Caddy never answered /ready in {timeout}s:\n{box.logs()}")


def served_chats(box: Stack, replica: str) -> float:
    """Chat requests this replica answered with a 200, from its own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(box.inside(replica, "/metrics")):
        for sample in family.samples:
            labels = sample.labels
            chat = labels.get("route") == "POST /v1/chat/completions" and labels.get("status") == "200"
            if sample.name == "hearth_requests_total" and chat:
                total += sample.value
    return total


def test_ha_profile_serves_through_caddy_from_two_replicas_sharing_one_database(stack: Stack) -> None:
    replicas = stack.containers("hearth")
    assert len(replicas) == 2, replicas
    assert len(stack.containers("postgres")) == len(stack.containers("redis")) == 1
    deadline = time.monotonic() + 300  # Caddy answers once one replica is ready
    for replica in replicas:  # each replica gets ready on its own
        while not stack.ready(replica):
            assert time.monotonic() < deadline, stack.logs()
            time.sleep(2)

    with httpx.Client(base_url=stack.url, verify=stack.verify, timeout=120) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        created = client.post("/admin/keys", json={"name": "compose-ci"}, headers=admin)
        assert created.status_code == 201, created.text
        key = {"Authorization": f"Bearer {created.json()['secret']}"}
        assert (
            client.post("/v1/chat/completions", json={"model": "default", "messages": []}).status_code == 401
        )
        chats = 0
        body = {"model": "default", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 6}
        # Until both replicas have answered (Caddy picks the least busy, at random among equals).
        while chats < 4 or min(served_chats(stack, r) for r in replicas) == 0:
            assert chats < 30, [served_chats(stack, r) for r in replicas]
            reply = client.post("/v1/chat/completions", json=body, headers=key)
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-hearth-variant"] == "smollm2-135m-instruct"
            assert 0 < reply.json()["usage"]["completion_tokens"] <= 6
            chats += 1
        per_replica = [served_chats(stack, r) for r in replicas]
        assert sum(per_replica) == chats and min(per_replica) > 0, per_replica

        # One ledger in PostgreSQL: each replica reports every chat, whichever replica served it.
        deadline = time.monotonic() + 20
        while True:
            seen = [json.loads(stack.inside(r, "/admin/usage?key=compose-ci"))["requests"] for r in replicas]
            if seen == [chats, chats] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert seen == [chats, chats], (seen, chats)
    print(f"{chats} chats through Caddy, per replica {per_replica}")
