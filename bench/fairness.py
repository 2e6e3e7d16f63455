"""Fair admission under overload: a quiet key's time to first token while another key floods.

One key (``flood``) keeps 64 streaming chats in flight; another (``quiet``) sends one short chat
at a time and records its time to first token. Each round starts a fresh default ``hearth
serve`` (auth on, SQLite ledger, the default chat model): the quiet key alone first (its
baseline), then with the flood, with fair admission on and, as the anchor, off
(``HEARTH_FAIR_ADMISSION=0``: one first-come, first-served queue), in alternating rounds.

    .venv/bin/python -m bench.fairness [--rounds 2] [--seconds 40] [--flood 64] [--flood-class batch]

With ``--flood-class batch`` the flooding key is a batch key: interactive work must then take
its slots whatever the shares (priority before fairness).

Reported per setting: the quiet key's TTFT p50 / p99 alone and under the flood, their ratio
(goal: p99 under the flood at most 2x alone), and the tokens per second all streams, both
keys', got during the flood: generated tokens, and total tokens as usage bills them (prompt +
completion; goal: fair at least 0.95x the anchor).
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
from rich.table import Table

from bench import common
from bench.common import RESULTS, free_port, start_default_hearth, stop, wait_http

console = Console()
COMPUTED = [0]  # prompt tokens computed since the counter was last reset
TOTAL = [0]  # usage total_tokens (prompt + completion, as billed) since the counter was last reset
TOPICS = [
    "the sea",
    "a mountain village",
    "a lighthouse keeper",
    "the first snow",
    "a lost key",
    "an old map",
]


async def stream_chat(
    http: httpx.AsyncClient, base: str, key: str, content: str, max_tokens: int
) -> tuple[float, int]:
    """One streamed chat: (seconds to its first token, tokens generated); the prompt tokens it
    computed (not read from the cache) are added to ``COMPUTED``."""
    body = {"model": "default", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    answer = await common.stream_chat(http, base, body, key)
    usage = answer.usage
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    COMPUTED[0] += int(usage.get("prompt_tokens") or 0) - cached
    TOTAL[0] += int(usage.get("total_tokens") or 0)
    return answer.ttft_s, int(usage.get("completion_tokens") or 0)


async def quiet_loop(http: httpx.AsyncClient, base: str, key: str, until: float) -> tuple[list[float], int]:
    """The quiet key's chats, one at a time: their TTFTs, and the tokens they got."""
    ttfts, tokens = [], 0
    n = 0
    while time.perf_counter() < until:
        ttft, made = await stream_chat(http, base, key, f"Question {n}: what is {n} plus {n}?", 8)
        ttfts.append(ttft)
        tokens += made
        n += 1
        await asyncio.sleep(0.2)
    return ttfts, tokens


async def flood_and_quiet(
    base: str, flood_key: str, quiet_key: str, seconds: float, flood: int
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=flood + 8, max_keepalive_connections=flood + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        alone, _ = await quiet_loop(http, base, quiet_key, time.perf_counter() + seconds / 4)
        tokens = 0
        stop_at = time.perf_counter() + seconds

        async def flooder(i: int) -> None:
            nonlocal tokens
            n = 0
            while time.perf_counter() < stop_at:
                _, made = await stream_chat(
                    http, base, flood_key, f"Write a long story about {TOPICS[(i + n) % 6]}.", 64
                )
                tokens += made
                n += 1

        started, COMPUTED[0], TOTAL[0] = time.perf_counter(), 0, 0
        flooders = [asyncio.create_task(flooder(i)) for i in range(flood)]
        await asyncio.sleep(3)  # the flood fills the slots and the queue first
        crowded, quiet_tokens = await quiet_loop(http, base, quiet_key, stop_at)
        await asyncio.gather(*flooders)
        elapsed = time.perf_counter() - started
    # Every stream's tokens, the quiet key's too: fairness moves capacity, it must not lose it.
    return {"alone": alone, "crowded": crowded, "tokens_per_s": (tokens + quiet_tokens) / elapsed,
            "prefill_tokens_per_s": COMPUTED[0] / elapsed, "total_tokens_per_s": TOTAL[0] / elapsed}  # fmt: skip


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def one_round(fair: bool, seconds: float, flood: int, flood_class: str) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="hearth-fairness-"))
    port = free_port()
    env = {"HEARTH_FAIR_ADMISSION": "1" if fair else "0"}
    process, base, flood_key = start_default_hearth(
        work, port, env=env, key_options=("--priority", flood_class)
    )
    try:
        wait_http(base + "/ready")
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        cli_env.update({"HEARTH_DATA_DIR": str(work / "data"), **env})
        made = subprocess.run([sys.executable, "-m", "hearth.cli", "keys", "create", "quiet"],
                              env=cli_env, capture_output=True, text=True, check=True)  # fmt: skip
        quiet_key = made.stdout.strip().splitlines()[-1]
        result = asyncio.run(flood_and_quiet(base, flood_key, quiet_key, seconds, flood))
    finally:
        stop(process)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--flood", type=int, default=64)
    parser.add_argument(
        "--flood-class",
        default="interactive",
        help="the flooding key's class: interactive, standard or batch",
    )
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"fair": [], "fifo": []}
    for r in range(args.rounds):
        for name in ("fair", "fifo") if r % 2 == 0 else ("fifo", "fair"):
            console.print(f"round {r + 1}: {name} ...")
            runs[name].append(one_round(name == "fair", args.seconds, args.flood, args.flood_class))
    table = Table("admission", "quiet TTFT p50 / p99 alone (ms)", "quiet TTFT p50 / p99 under flood (ms)",
                  "p99 ratio", "tokens/s under flood", "prompt tokens computed/s", title="fair admission")  # fmt: skip
    summary: dict[str, Any] = {}
    for name, rounds in runs.items():
        alone = [t for run in rounds for t in run["alone"]]
        crowded = [t for run in rounds for t in run["crowded"]]
        rate = statistics.median(run["tokens_per_s"] for run in rounds)
        prefill = statistics.median(run["prefill_tokens_per_s"] for run in rounds)
        total = statistics.median(run["total_tokens_per_s"] for run in rounds)
        summary[name] = {"alone_p50_ms": p(alone, 0.5), "alone_p99_ms": p(alone, 0.99),
                         "crowded_p50_ms": p(crowded, 0.5), "crowded_p99_ms": p(crowded, 0.99),
                         "p99_ratio": p(crowded, 0.99) / p(alone, 0.99), "tokens_per_s": rate, "prefill_tokens_per_s": prefill,
                         "total_tokens_per_s": total,
                         "samples": [len(alone), len(crowded)]}  # fmt: skip
        s = summary[name]
        table.add_row(name, f"{s['alone_p50_ms']:.0f} / {s['alone_p99_ms']:.0f}",
                      f"{s['crowded_p50_ms']:.0f} / {s['crowded_p99_ms']:.0f}", f"{s['p99_ratio']:.2f}", f"{rate:.1f}", f"{prefill:.1f}")  # fmt: skip
    console.print(table)
    throughput = summary["fair"]["tokens_per_s"] / summary["fifo"]["tokens_per_s"]
    console.print(f"tokens/s under the flood, fair / fifo: {throughput:.3f}")
    total_ratio = summary["fair"]["total_tokens_per_s"] / summary["fifo"]["total_tokens_per_s"]
    console.print(f"total tokens/s (prompt + completion, as billed), fair / fifo: {total_ratio:.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fairness.json").write_text(json.dumps({"args": vars(args), "summary": summary,
                                                        "throughput_ratio": throughput, "total_tokens_ratio": total_ratio, "runs": runs}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
