"""What a gateway adds in front of a fast upstream: Hearth against the LiteLLM proxy, one run.

One upstream (``bench/fast_upstream.py``, answers at once) is reached three ways: directly,
through Hearth and through LiteLLM's proxy, each gateway one process. Hearth runs as users run
it: ``hearth serve`` with auth on (a key with rpm, tpm and concurrency limits, every request
checked), the SQLite ledger writing a row per request, the upstream model from a config file.
LiteLLM runs with the most it can here: ``litellm --config`` with a master key (every request
authenticated); its database mode (virtual keys, per-key limits, spend logs) needs Prisma's
engines, which Prisma downloads at run time from binaries.prisma.sh, unreachable on this
machine. ``--hearth-no-auth`` adds Hearth without keys, limits or ledger, for comparison.

Non-streaming chat load comes from ``wrk`` (req/s, p50, p99); streaming time to first token
from an async client. Rounds alternate the targets at each concurrency; medians are reported,
with the latency each gateway adds over the direct path in the same round.

    .venv/bin/python -m bench.gateway_vs_litellm [--concurrency 1 4 16 64] [--rounds 3]

LiteLLM is installed once into ``~/.cache/hearth/bench-litellm`` (a venv of its own: its
dependency pins differ from ours).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.common import (
    RESULTS,
    free_ports,
    median,
    require,
    start_default_hearth,
    start_hearth,
    stop,
    wait_http,
    wrk,
)

console = Console()
MODEL = "fast"
LITELLM_VERSION = "1.108.7"
LITELLM_KEY = "sk-bench-" + secrets.token_hex(16)  # its master key: it refuses to start without one
LITELLM_VENV = Path.home() / ".cache" / "hearth" / "bench-litellm"
# Limits far above the load, so every request is checked against all three and none refused.
KEY_LIMITS = ("--rpm", "10000000", "--tpm", "10000000000", "--max-concurrent", "10000")
ASK = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
    "max_tokens": 16,
}


def litellm_binary() -> Path:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        console.print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
        subprocess.run(pip, check=True)
    return binary


def start_litellm(work: Path, port: int, upstream: str) -> subprocess.Popen[bytes]:
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        f"    litellm_params: {{model: openai/{MODEL}, api_base: {upstream}/v1, api_key: none}}\n"
        "litellm_settings: {set_verbose: false}\n"
    )
    # No internet here: LiteLLM would otherwise fetch its model price map at start.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_MASTER_KEY": LITELLM_KEY}  # fmt: skip
    log = (work / "litellm.log").open("ab")
    command = [str(litellm_binary()), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def post_script(work: Path, name: str, key: str | None) -> Path:
    """A wrk Lua script that POSTs the chat request (with the target's key, if any)."""
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(ASK))}",
             'wrk.headers["Content-Type"] = "application/json"']  # fmt: skip
    if key:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {key}"')
    path = work / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def first_text(line: str) -> bool:
    """Whether an SSE line is a chunk carrying generated text."""
    if not line.startswith("data:") or line.endswith("[DONE]"):
        return False
    choices = json.loads(line[5:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def stream_ttft(base: str, key: str | None, concurrency: int, per_worker: int) -> dict[str, float]:
    """Median time to the first content chunk of streamed chats, ``concurrency`` at a time."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {**ASK, "stream": True}
    ttfts: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for _ in range(per_worker):
            started = time.perf_counter()
            async with client.stream(
                "POST", f"{base}/v1/chat/completions", json=body, headers=headers
            ) as reply:
                if reply.status_code != 200:
                    errors += 1
                    await reply.aread()
                    continue
                first: float | None = None
                async for line in reply.aiter_lines():  # read to the end, as a client would
                    if first is None and first_text(line):
                        first = (time.perf_counter() - started) * 1000
                if first is not None:
                    ttfts.append(first)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return {"ttft_p50_ms": median(ttfts), "errors": float(errors)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--stream-concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--hearth-no-auth", action="store_true")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="add bench/proxy_floor.py: a bare FastAPI route forwarding to the upstream",
    )
    args = parser.parse_args()
    require("wrk", "closed-loop HTTP load", "apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="hearth-vs-litellm-"))
    ports = free_ports(5)
    upstream_url = f"http://127.0.0.1:{ports[0]}"
    upstream = subprocess.Popen([sys.executable, "-m", "bench.fast_upstream", "--port", str(ports[0])])
    config = work / "upstream.yaml"
    config.write_text(
        f"models:\n  - {{id: {MODEL}, kind: chat, backend: openai, source: {upstream_url}/v1}}\n"
    )
    hearth, hearth_url, key = start_default_hearth(
        work, ports[1], env={"HEARTH_CONFIG": str(config)}, key_options=KEY_LIMITS
    )
    litellm = start_litellm(work, ports[2], upstream_url)
    processes = [upstream, hearth, litellm]
    targets: dict[str, tuple[str, str | None]] = {
        "direct": (upstream_url, None),
        "hearth": (hearth_url, key),
        "litellm": (f"http://127.0.0.1:{ports[2]}", LITELLM_KEY),
    }
    if args.hearth_no_auth:
        env = {"HEARTH_CONFIG": str(config)}
        processes.append(start_hearth(work / "no-auth", ports[3], "--no-auth", env=env))
        targets["hearth-no-auth"] = (f"http://127.0.0.1:{ports[3]}", None)
    if args.floor:
        floor = ["-m", "bench.proxy_floor", "--port", str(ports[4]), "--upstream", upstream_url]
        processes.append(subprocess.Popen([sys.executable, *floor]))
        targets["fastapi-floor"] = (f"http://127.0.0.1:{ports[4]}", None)
    try:
        wait_http(upstream_url + "/v1/models")
        wait_http(hearth_url + "/ready")
        wait_http(targets["litellm"][0] + "/health/liveliness", timeout=180)
        if args.hearth_no_auth:
            wait_http(targets["hearth-no-auth"][0] + "/ready")
        if args.floor:
            wait_http(targets["fastapi-floor"][0] + "/health")
        scripts = {name: post_script(work, name, secret) for name, (_, secret) in targets.items()}
        for name, (base, _) in targets.items():  # warm up and check each path answers
            warm = wrk(f"{base}/v1/chat/completions", 2, 4, script=scripts[name])
            if warm["non_2xx"]:
                raise SystemExit(f"{name} answered non-2xx during warm-up; see {work}")
        results = measure(targets, scripts, args)
        rows = ledger_rows(work / "data")
    finally:
        for process in processes:
            stop(process)
    report(results, args, rows)


def measure(
    targets: dict[str, tuple[str, str | None]], scripts: dict[str, Path], args: argparse.Namespace
) -> dict[str, Any]:
    plain: dict[str, dict[int, list[dict[str, float]]]] = {name: {} for name in targets}
    streamed: dict[str, dict[int, list[dict[str, float]]]] = {name: {} for name in targets}
    steps = (len(args.concurrency) + len(args.stream_concurrency)) * args.rounds * len(targets)
    with Progress(console=console) as progress:
        task = progress.add_task("alternating", total=steps)
        for c in args.concurrency:
            for _ in range(args.rounds):
                for name, (base, _) in targets.items():
                    progress.update(task, description=f"chat {name} c={c}")
                    run = wrk(f"{base}/v1/chat/completions", args.seconds, c, script=scripts[name])
                    plain[name].setdefault(c, []).append(run)
                    progress.advance(task)
        for c in args.stream_concurrency:
            per_worker = max(4, 64 // c)
            for _ in range(args.rounds):
                for name, (base, secret) in targets.items():
                    progress.update(task, description=f"stream {name} c={c}")
                    streamed[name].setdefault(c, []).append(
                        asyncio.run(stream_ttft(base, secret, c, per_worker))
                    )
                    progress.advance(task)
    return {"plain": plain, "streamed": streamed}


def ledger_rows(data_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(data_dir / "hearth.db") as db:
        return int(db.execute("select count(*) from usage_records").fetchone()[0])


def report(results: dict[str, Any], args: argparse.Namespace, rows: int) -> None:
    plain, streamed = results["plain"], results["streamed"]
    gateways = [name for name in plain if name != "direct"]
    summary: dict[str, Any] = {"plain": {}, "streamed": {}}
    table = Table("clients", "target", "req/s", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "non-2xx",
                  title="Non-streaming chat through a gateway (medians of rounds)")  # fmt: skip
    for c in args.concurrency:
        for name in plain:
            runs, direct = plain[name][c], plain["direct"][c]
            row = {m: median([r[m] for r in runs]) for m in ("rps", "p50_ms", "p99_ms")}
            for m in ("p50_ms", "p99_ms"):  # against the direct path in the same round
                row[f"added_{m}"] = median([r[m] - d[m] for r, d in zip(runs, direct, strict=True)])
            row["non_2xx"] = sum(r["non_2xx"] for r in runs)
            summary["plain"].setdefault(c, {})[name] = row
            added = (
                ("-", "-")
                if name == "direct"
                else (f"{row['added_p50_ms']:+.2f}", f"{row['added_p99_ms']:+.2f}")
            )
            table.add_row(str(c), name, f"{row['rps']:.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                          *added, f"{row['non_2xx']:.0f}")  # fmt: skip
    console.print(table)
    ttft = Table(
        "streams", *(f"{n} TTFT p50 ms" for n in streamed), title="Streaming chat: time to first token"
    )
    for c in args.stream_concurrency:
        cells = {n: median([r["ttft_p50_ms"] for r in streamed[n][c]]) for n in streamed}
        summary["streamed"][c] = cells
        ttft.add_row(str(c), *(f"{cells[n]:.2f}" for n in streamed))
    console.print(ttft)
    for c in args.concurrency:
        cells = summary["plain"][c]
        line = ", ".join(
            f"{g}/litellm: req/s {cells[g]['rps'] / cells['litellm']['rps']:.2f}, "
            f"added p99 {cells[g]['added_p99_ms'] / cells['litellm']['added_p99_ms']:.2f}"
            for g in gateways
            if g != "litellm"
        )
        console.print(f"c={c}: {line}")
    for c in args.stream_concurrency:
        cells = summary["streamed"][c]
        added = ", ".join(f"{g} {cells[g] - cells['direct']:+.2f} ms" for g in gateways)
        console.print(f"streams={c}: TTFT p50 added: {added}")
    console.print(f"usage rows in Hearth's ledger: {rows}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "gateway_vs_litellm.json"
    out.write_text(
        json.dumps({"args": vars(args), "summary": summary, "runs": results, "ledger_rows": rows}, indent=2)
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
