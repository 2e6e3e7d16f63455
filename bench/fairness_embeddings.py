"""Fair admission for embeddings: a quiet key's latency while another key floods the batcher.

One key (``flood``) keeps 32 requests of 16 texts each in flight on ``/v1/embeddings``; another
(``quiet``) sends one text at a time and records each request's latency. A fresh default
``hearth serve`` per round (auth on, SQLite ledger, the default embedding model): the quiet key
alone first, then under the flood; fair admission on, and as the anchor off
(``HEARTH_FAIR_ADMISSION=0``: the batcher's queue first come, first served), in alternating
rounds. Reported: the quiet key's latency p50 / p99 alone and under the flood, and the texts a
second everyone got during the flood.

    .venv/bin/python -m bench.fairness_embeddings [--rounds 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.common import RESULTS, free_port, start_default_hearth, stop, wait_http
from bench.fairness import p

console = Console()
FLOOD, TEXTS = 32, 16


async def embed(http: httpx.AsyncClient, base: str, key: str, texts: list[str]) -> float:
    began = time.perf_counter()
    reply = await http.post(base + "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": texts},
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    reply.raise_for_status()
    return time.perf_counter() - began


async def quiet_loop(http: httpx.AsyncClient, base: str, key: str, until: float) -> list[float]:
    latencies, n = [], 0
    while time.perf_counter() < until:
        latencies.append(await embed(http, base, key, [f"a short question number {n}"]))
        n += 1
        await asyncio.sleep(0.05)
    return latencies


async def flood_and_quiet(base: str, flood_key: str, quiet_key: str, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=FLOOD + 8, max_keepalive_connections=FLOOD + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        alone = await quiet_loop(http, base, quiet_key, time.perf_counter() + seconds / 4)
        texts = 0
        stop_at = time.perf_counter() + seconds

        async def flooder(i: int) -> None:
            nonlocal texts
            n = 0
            while time.perf_counter() < stop_at:
                await embed(
                    http,
                    base,
                    flood_key,
                    [f"document {i}-{n}-{j} about the sea and ships" for j in range(TEXTS)],
                )
                texts += TEXTS
                n += 1

        started = time.perf_counter()
        flooders = [asyncio.create_task(flooder(i)) for i in range(FLOOD)]
        await asyncio.sleep(2)
        crowded = await quiet_loop(http, base, quiet_key, stop_at)
        await asyncio.gather(*flooders)
        elapsed = time.perf_counter() - started
    return {"alone": alone, "crowded": crowded, "texts_per_s": (texts + len(crowded)) / elapsed}


def one_round(fair: bool, seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="hearth-fair-embed-"))
    env = {"HEARTH_FAIR_ADMISSION": "1" if fair else "0"}
    process, base, flood_key = start_default_hearth(work, free_port(), env=env)
    try:
        wait_http(base + "/ready")
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        cli_env.update({"HEARTH_DATA_DIR": str(work / "data"), **env})
        made = subprocess.run([sys.executable, "-m", "hearth.cli", "keys", "create", "quiet"],
                              env=cli_env, capture_output=True, text=True, check=True)  # fmt: skip
        quiet_key = made.stdout.strip().splitlines()[-1]
        return asyncio.run(flood_and_quiet(base, flood_key, quiet_key, seconds))
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"fair": [], "fifo": []}
    for r in range(args.rounds):
        for name in ("fair", "fifo") if r % 2 == 0 else ("fifo", "fair"):
            console.print(f"round {r + 1}: {name} ...")
            runs[name].append(one_round(name == "fair", args.seconds))
    summary: dict[str, Any] = {}
    for name, rounds in runs.items():
        alone = [t for run in rounds for t in run["alone"]]
        crowded = [t for run in rounds for t in run["crowded"]]
        summary[name] = {"alone_p50_ms": p(alone, 0.5), "alone_p99_ms": p(alone, 0.99),
                         "crowded_p50_ms": p(crowded, 0.5), "crowded_p99_ms": p(crowded, 0.99),
                         "texts_per_s": statistics.median(run["texts_per_s"] for run in rounds),
                         "samples": [len(alone), len(crowded)]}  # fmt: skip
        console.print(name, summary[name])
    ratio = summary["fair"]["texts_per_s"] / summary["fifo"]["texts_per_s"]
    console.print(f"texts/s under the flood, fair / fifo: {ratio:.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fairness_embeddings.json").write_text(
        json.dumps(
            {"args": vars(args), "summary": summary, "throughput_ratio": ratio, "runs": runs}, indent=1
        )
    )


if __name__ == "__main__":
    main()
