"""Helpers shared by the benchmarks: start servers, run the shared load generator, summarise."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = ROOT.parent / "shared" / "bench"
RESULTS = ROOT / "bench" / "results"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: the sockets are held together so the OS cannot repeat one."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_http(url: str, timeout: float = 300) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 in {timeout}s")


def start_hearth(
    data_dir: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    full_env.update({"HEARTH_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **(env or {})})
    log = (data_dir.parent / f"hearth-{port}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "hearth.cli", "serve", "--port", str(port), "--log-level", "warning", *args],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def require(command: str, why: str, install: str) -> str:
    """The path of ``command``, or a clear exit saying what it is for and how to get it."""
    import shutil

    path = shutil.which(command)
    if path is None:
        raise SystemExit(f"this benchmark needs `{command}` ({why}); install it: {install}")
    return path


BENCH_KEY = "bench"


def env_pairs(pairs: list[str]) -> dict[str, str]:
    """``--env NAME=VALUE`` options: settings for one experiment's server, named in its results."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--env takes NAME=VALUE, not {pair!r}")
        out[name] = value
    return out


def start_default_hearth(
    work: Path, port: int, env: dict[str, str] | None = None, key_options: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str, str]:
    """What a user runs: ``hearth serve`` with the default models, auth on and the SQLite ledger.

    A key is made first, as a user would (``hearth keys create``, with ``key_options`` such as
    limits). Returns the process, the base
    URL and the key's secret.
    """
    data_dir = work / "data"
    settings = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update({"HEARTH_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **settings})
    made = subprocess.run(
        [sys.executable, "-m", "hearth.cli", "keys", "create", BENCH_KEY, *key_options],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    secret = made.stdout.strip().splitlines()[-1]
    process = start_hearth(data_dir, port, env=env)
    return process, f"http://127.0.0.1:{port}", secret


def llama_server_binary() -> str:
    """The shared reference build, compiled like our wheel: -march=native without AMX.

    llama.cpp's AMX kernels crash on Sapphire Rapids (see the Makefile); CMake takes CFLAGS and
    CXXFLAGS from the environment on its first configure.
    """
    script = Path(__file__).with_name("build_llama_server.sh")
    if not script.is_file():
        raise SystemExit(f"the reference llama-server build script is missing: {script}")
    require("cmake", "building the reference llama-server", "apt-get install -y cmake build-essential")
    env = dict(os.environ)
    if platform.machine() == "x86_64":
        env["CFLAGS"] = env["CXXFLAGS"] = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True, env=env).stdout
    return out.strip().splitlines()[-1]


def run_load(
    base_url: str, concurrency: int, per_worker: int, max_tokens: int, model: str, key: str = "-"
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(SHARED_BENCH / "llm_load.py"),
            base_url,
            str(concurrency),
            str(per_worker),
            str(max_tokens),
            key,
            model,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (the server's model worker, its children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        # Each thread lists the children it started (the worker is started by a loader thread).
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    total = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def wrk(
    url: str, seconds: int, connections: int, header: str | None = None, *, script: Path | None = None
) -> dict[str, float]:
    """Closed-loop load from ``wrk`` (C, keep-alive): req/s, p50 and p99 latency, non-2xx count.

    ``script`` is a wrk Lua file (a POST body, headers); ``header`` one extra header line.
    """
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if header:
        cmd += ["-H", header]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps is not None, out
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def _latency(wrk_output: str, label: str) -> float:
    found = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", wrk_output)
    assert found is not None, wrk_output
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


@dataclass
class StreamedChat:
    """What one streamed ``/v1/chat/completions`` answer showed: time to its first text, and the
    last chunk's usage and llama-server ``timings`` (either may be absent)."""

    ttft_s: float
    usage: dict[str, Any]
    timings: dict[str, Any]


async def stream_chat(
    http: httpx.AsyncClient, base: str, body: dict[str, Any], key: str | None
) -> StreamedChat:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    started, first = time.perf_counter(), None
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    async with http.stream("POST", base + "/v1/chat/completions", json=body, headers=headers) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if first is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                first = time.perf_counter() - started
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
    return StreamedChat(first if first is not None else time.perf_counter() - started, usage, timings)
