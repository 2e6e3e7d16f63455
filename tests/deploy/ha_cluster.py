"""N real ``hearth serve`` replicas behind the shipped nginx config, and a bounded load generator.

Shared by tests/deploy/test_ha.py and bench/reliability.py. The replicas share one PostgreSQL
schema and Redis, run on the fake engines (fast and deterministic), and keep their ports across
restarts, as replicas behind a load balancer do. nginx is Debian's, run unprivileged with the
config rendered from deploy/ha/nginx.conf.template.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import sqlalchemy as sa

from tests.helpers.live import LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "deploy" / "ha" / "render.py"
ADMIN = "hk-admin-ha-cluster-test"
LB_ID_HEADER = "x-hearth-lb-id"
TOKEN_DELAY_S = 0.02
FAKE_MODELS = [
    {
        "id": "fake-chat",
        "kind": "chat",
        "backend": "fake",
        "source": "-",
        "options": {"token_delay_s": TOKEN_DELAY_S},
    },
    {
        "id": "fake-chat-v2",
        "kind": "chat",
        "backend": "fake",
        "source": "-",
        "options": {"token_delay_s": TOKEN_DELAY_S},
    },
    {"id": "fake-embed", "kind": "embedding", "backend": "fake", "source": "-"},
]


def binary(name: str) -> str | None:
    """nginx and haproxy live in /usr/sbin, which a user's PATH may lack."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if Path(p).exists()), None)


def nginx_binary() -> str | None:
    return binary("nginx")


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hearth_ha_render", RENDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Tests want to know which replica served a request; the shipped configs don't tell clients.
_EXPOSE = {
    "nginx": (
        "proxy_pass http://hearth;",
        "proxy_pass http://hearth;\n            add_header X-Upstream $upstream_addr always;",
    ),
    "haproxy": (
        "    option http-no-delay",
        "    option http-no-delay\n    http-response set-header X-Upstream %si:%sp",
    ),
}


class Balancer:
    """nginx (``daemon off;``) or HAProxy (``-db``) in the foreground, its files all in ``prefix``."""

    def __init__(self, kind: str, prefix: Path, replicas: list[str], **options: int) -> None:
        path = binary(kind)
        assert path is not None, kind
        self.kind, self.binary, self.prefix, self.port = kind, path, prefix, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = _renderer().write(replicas, prefix, f"127.0.0.1:{self.port}", kind, **options)
        old, new = _EXPOSE[kind]
        self.config.write_text(self.config.read_text().replace(old, new))
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self, *extra: str) -> list[str]:
        if self.kind == "nginx":
            return [self.binary, *extra, "-p", str(self.prefix), "-c", str(self.config)]
        return [self.binary, *extra, "-f", str(self.config)]

    def check(self) -> subprocess.CompletedProcess[str]:
        flag = "-t" if self.kind == "nginx" else "-c"
        return subprocess.run(self._command(flag), capture_output=True, text=True, timeout=30)

    def start(self) -> Balancer:
        log = (self.prefix / f"{self.kind}.out").open("ab")
        extra = () if self.kind == "nginx" else ("-db",)
        self.process = subprocess.Popen(self._command(*extra), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}: {self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not answer on {self.url}: {self.logs()}")

    def logs(self) -> str:
        paths = [self.prefix / f"{self.kind}.out", self.prefix / "error.log"]
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in paths if p.exists())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Graceful for both: let open streams finish.
            self.process.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGUSR1)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    """Replicas sharing ``database_url`` and ``redis_url``, each on a port it keeps across restarts."""

    root: Path
    database_url: str
    redis_url: str
    replicas: list[LiveServer] = field(default_factory=list)
    lb: Balancer | None = None
    shutdown_delay_s: float = 1.5
    extra_balancers: list[Balancer] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=lambda: FAKE_MODELS)

    def env(self) -> dict[str, str]:
        return {
            "HEARTH_MODELS": json.dumps(self.models),
            "HEARTH_ADMIN_KEY": ADMIN,
            "HEARTH_DATABASE_URL": self.database_url,
            "HEARTH_REDIS_URL": self.redis_url,
            "HEARTH_LEDGER_COMMIT_WAIT": "1",  # a killed replica is not started again here
            "HEARTH_TRUSTED_REQUEST_ID_HEADER": LB_ID_HEADER,
            "HEARTH_SHUTDOWN_DELAY_S": str(self.shutdown_delay_s),
            "HEARTH_DRAIN_TIMEOUT_S": "20",
            "HEARTH_LOG_LEVEL": "warning",
        }

    def start(self, n: int) -> Cluster:
        ports = [free_port() for _ in range(n)]
        self.replicas = [
            LiveServer(self.root / f"replica-{i}", env=self.env(), port=port) for i, port in enumerate(ports)
        ]
        for replica in self.replicas:  # one at a time: the first runs the migrations
            replica.start()
        self.lb = self.balancer("nginx").start()
        return self

    def balancer(self, kind: str, **options: int) -> Balancer:
        """A load balancer of ``kind`` over the replicas (not started)."""
        addresses = [f"127.0.0.1:{r.port}" for r in self.replicas]
        return Balancer(kind, self.root / kind, addresses, **options)

    @property
    def url(self) -> str:
        assert self.lb is not None
        return self.lb.url

    def kill(self, index: int) -> None:
        process = self.replicas[index].process
        assert process is not None
        process.kill()  # SIGKILL: no drain, no flush, sockets reset by the kernel
        process.wait()

    def restart(self, index: int) -> None:
        """SIGTERM (drain), wait for the exit, start again on the same port, wait until ready."""
        replica = self.replicas[index]
        code = replica.stop(signal.SIGTERM, timeout=60)
        # uvicorn re-raises the signal once it has shut down gracefully: -15 is a clean exit.
        assert code in (0, -signal.SIGTERM), f"replica {index} exited with {code}:\n{replica.logs()[-3000:]}"
        replica.start()

    def create_key(self, name: str, **limits: object) -> str:
        return self.replicas[0].create_key(ADMIN, name, **limits)

    def ledger(self, prefix: str) -> dict[str, list[int]]:
        """request id -> the status of each of its usage rows, for ids starting with ``prefix``."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text("SELECT request_id, status_code FROM usage_records WHERE request_id LIKE :p"),
                    {"p": prefix + "%"},
                ).all()
        finally:
            engine.dispose()
        found: dict[str, list[int]] = {}
        for request_id, status in rows:
            found.setdefault(str(request_id), []).append(int(status))
        return found

    def stop(self) -> None:
        if self.lb is not None:
            self.lb.stop()
        for extra in self.extra_balancers:
            extra.stop()
        for replica in self.replicas:
            replica.stop(signal.SIGINT)


@dataclass
class Outcome:
    """One client request as the client saw it."""

    id: str
    kind: str  # chat | stream | embed
    status: int | None = None
    answered: bool = False  # a whole answer: a body, or a stream that reached its final event
    cut: bool = False  # a stream that started (200) and ended without its final event
    error: str | None = None
    upstream: str | None = None
    variant: str | None = None
    latency_s: float = 0.0
    started: float = 0.0  # time.monotonic() when it was sent


CHAT_TOKENS = 5
STREAM_TOKENS = 15


def chat_body(
    kind: str, text: str, model: str = "fake-chat", max_tokens: int | None = None
) -> dict[str, Any]:
    tokens = max_tokens or (STREAM_TOKENS if kind == "stream" else CHAT_TOKENS)
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": tokens,
    }
    if kind == "stream":
        body["stream"] = True
    return body


def send(
    client: httpx.Client, kind: str, request_id: str, model: str = "fake-chat", max_tokens: int | None = None
) -> Outcome:
    """One request of ``kind``; never raises: what went wrong is on the outcome."""
    outcome = Outcome(request_id, kind)
    headers = {"x-request-id": request_id}
    outcome.started = time.monotonic()
    started = time.perf_counter()
    try:
        if kind == "embed":
            reply = client.post(
                "/v1/embeddings", json={"model": "fake-embed", "input": f"text {request_id}"}, headers=headers
            )
            _note(outcome, reply)
            outcome.answered = reply.status_code == 200 and len(reply.json()["data"]) == 1
        elif kind == "chat":
            reply = client.post(
                "/v1/chat/completions", json=chat_body(kind, request_id, model, max_tokens), headers=headers
            )
            _note(outcome, reply)
            outcome.answered = (
                reply.status_code == 200 and reply.json()["choices"][0]["finish_reason"] is not None
            )
        else:
            with client.stream(
                "POST",
                "/v1/chat/completions",
                json=chat_body(kind, request_id, model, max_tokens),
                headers=headers,
            ) as reply:
                _note(outcome, reply)
                if reply.status_code != 200:
                    reply.read()
                else:
                    outcome.answered = _read_stream(reply)
                    outcome.cut = not outcome.answered
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        if outcome.kind == "stream" and outcome.status == 200:
            outcome.cut = True  # the connection broke mid-stream: no final event
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.latency_s = time.perf_counter() - started
    return outcome


def _note(outcome: Outcome, reply: httpx.Response) -> None:
    outcome.status = reply.status_code
    outcome.upstream = reply.headers.get("x-upstream")
    outcome.variant = reply.headers.get("x-hearth-variant")
    if reply.headers.get("x-request-id") not in (None, outcome.id):
        raise ValueError(f"x-request-id {reply.headers.get('x-request-id')} is not {outcome.id}")


def _read_stream(reply: httpx.Response) -> bool:
    """True when the stream ended properly: a finish_reason, then ``data: [DONE]``."""
    finished = done = False
    for line in reply.iter_lines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            done = True
            continue
        chunk = json.loads(data)
        if any(c.get("finish_reason") for c in chunk.get("choices", [])):
            finished = True
    return finished and done


KINDS = ("chat", "stream", "embed")


class LoadGenerator:
    """``workers`` threads, each sending one request at a time (bounded), kinds in turn, until stopped."""

    def __init__(
        self, base: str, secret: str, prefix: str, *, workers: int = 6, pause_s: float = 0.01
    ) -> None:
        self.base, self.secret, self.prefix = base, secret, prefix
        self.workers, self.pause_s = workers, pause_s
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, worker: int) -> None:
        with client(self.base, self.secret) as http:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                kind = KINDS[(worker + n) % len(KINDS)]
                outcome = send(http, kind, f"{self.prefix}-{worker}-{n}-{uuid.uuid4().hex[:6]}")
                with self._lock:
                    self.outcomes.append(outcome)
                time.sleep(self.pause_s)

    def __enter__(self) -> LoadGenerator:
        self._threads = [
            threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_for(self, more: int, timeout: float = 60) -> None:
        """Until ``more`` requests beyond those done now have completed."""
        target = self.count() + more
        wait_until(lambda: self.count() >= target, timeout=timeout)


def client(base: str, secret: str, timeout: float = 60) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=timeout)


@dataclass
class Tally:
    requests: int
    answered: int
    failed: list[Outcome]
    streams: int
    cut: int
    ledger_rows: int
    answered_with_one_row: int
    duplicates: list[str]
    strays: list[str]  # rows for requests the client did not see answered (other than cut streams)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "failed": len(self.failed),
            "streams": self.streams,
            "cut_streams": self.cut,
            "ledger_rows": self.ledger_rows,
            "answered_with_one_row": self.answered_with_one_row,
            "duplicates": len(self.duplicates),
            "strays": len(self.strays),
        }


def tally(outcomes: list[Outcome], ledger: dict[str, list[int]]) -> Tally:
    """Reconcile what the clients saw with the usage rows.

    A failure is a request that was neither answered nor a cut stream (a cut stream is visible
    as such to its client, which is what the kill test allows).
    """
    answered = [o for o in outcomes if o.answered]
    cut = {o.id for o in outcomes if o.cut}
    failed = [o for o in outcomes if not o.answered and not o.cut]
    duplicates = [i for i, statuses in ledger.items() if len(statuses) != 1]
    one_row = sum(1 for o in answered if ledger.get(o.id) == [200])
    seen = {o.id for o in answered}
    strays = [i for i in ledger if i not in seen and i not in cut]
    return Tally(
        requests=len(outcomes),
        answered=len(answered),
        failed=failed,
        streams=sum(1 for o in outcomes if o.kind == "stream"),
        cut=len(cut),
        ledger_rows=sum(len(v) for v in ledger.values()),
        answered_with_one_row=one_row,
        duplicates=duplicates,
        strays=strays,
    )


def wait_until(check: Callable[[], bool], timeout: float = 30, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise AssertionError("condition not met in time")


class LongStreams:
    """``n`` long streams opened one after another: round robin puts them on every replica."""

    def __init__(self, base: str, secret: str, prefix: str, n: int, max_tokens: int = 150) -> None:
        self.outcomes: list[Outcome] = []
        self._args = (base, secret, prefix, n, max_tokens)
        self._threads: list[threading.Thread] = []

    def open(self) -> LongStreams:
        base, secret, prefix, n, max_tokens = self._args
        for i in range(n):
            thread = threading.Thread(target=self._one, args=(base, secret, f"{prefix}-long-{i}", max_tokens))
            thread.start()
            self._threads.append(thread)
            time.sleep(0.05)
        return self

    def _one(self, base: str, secret: str, request_id: str, max_tokens: int) -> None:
        with client(base, secret) as http:
            self.outcomes.append(send(http, "stream", request_id, max_tokens=max_tokens))

    def join(self) -> list[Outcome]:
        for thread in self._threads:
            thread.join(120)
        return self.outcomes
