"""CPU per request through the whole ASGI app (middleware, routing, auth, route), no network.

The app runs on fake engines in this process and requests go straight to its ASGI callable, so
the figure is the framework's and the gateway's own cost, without sockets or a load generator:
steadier than a ``wrk`` run on a shared 2-core machine, and what to watch when trimming the
request path (the event loop's share of the CPU is what an embeddings forward pass loses).

    .venv/bin/python -m bench.app_overhead [--route embeddings|models|chat] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from hearth.app import build_app
from hearth.config import ModelKind, ModelSpec, Settings

TEXT = "Sentence number 7 about cats, containers, bread and the theory of relativity."
ROUTES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "embeddings": ("POST", "/v1/embeddings", {"model": "fake-embed", "input": TEXT}),
    "chat": (
        "POST",
        "/v1/chat/completions",
        {"model": "fake-chat", "messages": [{"role": "user", "content": TEXT}], "max_tokens": 8},
    ),
    "models": ("GET", "/v1/models", None),
}


def fake_app() -> FastAPI:
    models = [
        ModelSpec(id="fake-chat", kind=ModelKind.CHAT, backend="fake", source="-"),
        ModelSpec(id="fake-embed", kind=ModelKind.EMBEDDING, backend="fake", source="-"),
    ]
    data_dir = Path(tempfile.mkdtemp(prefix="hearth-app-")) / "data"
    return build_app(Settings(data_dir=data_dir, models=models, no_auth=True))


async def started(app: FastAPI) -> Callable[[], Awaitable[None]]:
    """Run the app's lifespan startup, wait for the fake models to load; returns its shutdown
    (which a bench must run: threads left running at exit can crash the interpreter)."""
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    up, down = asyncio.Event(), asyncio.Event()

    async def send(message: Any) -> None:
        if message["type"] == "lifespan.startup.complete":
            up.set()
        elif message["type"] == "lifespan.shutdown.complete":
            down.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.get_running_loop().create_task(app(scope, queue.get, send))  # type: ignore[arg-type]
    await up.wait()
    # The lifespan loads models in a background task that exposes no event to wait on.
    while await status_of(app, "GET", "/ready") != 200:  # noqa: ASYNC110
        await asyncio.sleep(0.01)

    async def stop() -> None:
        await queue.put({"type": "lifespan.shutdown"})
        await down.wait()
        await lifespan

    return stop


async def status_of(app: FastAPI, method: str, path: str) -> int:
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
             "state": {}}  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    return status[0]


async def measure(route: str, requests: int, rounds: int) -> list[float]:
    app = fake_app()
    stop = await started(app)
    method, path, payload = ROUTES[route]
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = [(b"host", b"bench"), (b"content-length", str(len(body)).encode())]
    if payload is not None:
        headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }

    async def one() -> None:
        delivered = False
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # never disconnects
            raise AssertionError

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope, state={}), receive, send)  # type: ignore[arg-type]
        assert status == [200], status

    for _ in range(requests // 4):  # warm-up
        await one()
    per_request_us: list[float] = []
    for _ in range(rounds):
        begun = time.perf_counter()
        for _ in range(requests):
            await one()
        per_request_us.append((time.perf_counter() - begun) / requests * 1e6)
    await stop()
    return per_request_us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--route", choices=sorted(ROUTES), default="embeddings")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rounds = asyncio.run(measure(args.route, args.requests, args.rounds))
    print(
        json.dumps(
            {
                "route": args.route,
                "us_per_request_median": round(statistics.median(rounds), 1),
                "rounds": [round(r, 1) for r in rounds],
            }
        )
    )


if __name__ == "__main__":
    main()
