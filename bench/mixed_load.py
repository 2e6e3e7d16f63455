"""Mixed load: 8 LLM streams and 16 single-text embedding clients on one default ``hearth serve``.

Each round runs three phases of the same length, in turn: the LLM load alone, the embeddings
load alone, and both together. What it reports is each throughput under the mix as a fraction of
the same load alone (medians over the rounds); on 2 cores the two loads must share, and the
target is that the fractions add up to at least 0.9. It also reports the LLM's time to first
token, p50 and p95, alone and under the mix.

The LLM load is streaming ``/v1/completions`` on gemma-3-270m (128 tokens, greedy), each stream
sending its next request as soon as one ends; the embeddings load is ``wrk`` (C, so the client
costs little CPU) posting one text per request to all-minilm-l6-v2. The server is what a user
starts: the four default models, a key, the SQLite ledger.

    .venv/bin/python -m bench.mixed_load [--rounds 3] [--seconds 20] [--streams 8] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import RESULTS, env_pairs, free_port, median, require, start_default_hearth, stop, wait_http
from bench.embeddings_bench import wrk_load
from bench.load import PROMPTS

console = Console()


async def llm_for(base: str, key: str, streams: int, seconds: float, max_tokens: int) -> dict[str, Any]:
    """Streams busy for ``seconds``: tokens/s over the window, TTFT of every request started in it."""
    headers = {"Authorization": f"Bearer {key}"}
    tokens, ttfts = 0, []
    stop_at = time.perf_counter() + seconds

    async def stream(i: int, client: httpx.AsyncClient) -> None:
        nonlocal tokens
        j = i
        while time.perf_counter() < stop_at:
            body = {"model": "gemma-3-270m", "prompt": PROMPTS[j % len(PROMPTS)], "max_tokens": max_tokens,
                    "temperature": 0.0, "stream": True}  # fmt: skip
            started, first = time.perf_counter(), None
            async with client.stream("POST", base + "/v1/completions", json=body, headers=headers) as reply:
                reply.raise_for_status()
                async for line in reply.aiter_lines():
                    if not line.startswith("data:") or line == "data: [DONE]":
                        continue
                    choices = json.loads(line[5:]).get("choices") or []
                    if choices and choices[0].get("text"):
                        first = first or time.perf_counter() - started
                        if time.perf_counter() < stop_at:  # only tokens inside the window count
                            tokens += 1
            if first is not None:
                ttfts.append(first)
            j += streams

    limits = httpx.Limits(max_connections=streams + 2, max_keepalive_connections=streams + 2)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(stream(i, client) for i in range(streams)))
        window = min(seconds, time.perf_counter() - started)
    ttfts.sort()
    return {
        "tok_per_s": tokens / window,
        "ttft_p50_ms": 1000 * ttfts[len(ttfts) // 2] if ttfts else None,
        "ttft_p95_ms": 1000 * ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))] if ttfts else None,
        "requests": len(ttfts),
    }


def together(base: str, key: str, args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    """Both loads at once; the embeddings client runs in a thread beside the LLM streams."""
    embeddings: list[float] = []
    worker = threading.Thread(
        target=lambda: embeddings.append(wrk_load(base, args.clients, args.seconds, key))
    )
    worker.start()
    llm = asyncio.run(llm_for(base, key, args.streams, args.seconds, args.max_tokens))
    worker.join()
    return llm, embeddings[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)")
    args = parser.parse_args()
    require("wrk", "the embeddings load generator", "apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="hearth-mixed-"))
    server, base, key = start_default_hearth(work, free_port(), env_pairs(args.env))
    rounds: list[dict[str, Any]] = []
    try:
        wait_http(base + "/ready")
        asyncio.run(llm_for(base, key, args.streams, 3, 16))  # warm both paths up
        wrk_load(base, args.clients, 2, key)
        for r in range(args.rounds):
            llm_alone = asyncio.run(llm_for(base, key, args.streams, args.seconds, args.max_tokens))
            emb_alone = wrk_load(base, args.clients, args.seconds, key)
            llm_mixed, emb_mixed = together(base, key, args)
            row = {
                "llm_alone": llm_alone,
                "embeddings_alone_per_s": emb_alone,
                "llm_mixed": llm_mixed,
                "embeddings_mixed_per_s": emb_mixed,
                "llm_fraction": llm_mixed["tok_per_s"] / llm_alone["tok_per_s"],
                "embeddings_fraction": emb_mixed / emb_alone,
            }
            row["sum"] = row["llm_fraction"] + row["embeddings_fraction"]
            rounds.append(row)
            console.print(
                f"round {r + 1}: fractions {row['llm_fraction']:.2f} + {row['embeddings_fraction']:.2f} = {row['sum']:.2f}"
            )
    finally:
        stop(server)
    summary = {
        "llm_alone_tok_per_s": median([r["llm_alone"]["tok_per_s"] for r in rounds]),
        "llm_mixed_tok_per_s": median([r["llm_mixed"]["tok_per_s"] for r in rounds]),
        "embeddings_alone_per_s": median([r["embeddings_alone_per_s"] for r in rounds]),
        "embeddings_mixed_per_s": median([r["embeddings_mixed_per_s"] for r in rounds]),
        "llm_fraction": median([r["llm_fraction"] for r in rounds]),
        "embeddings_fraction": median([r["embeddings_fraction"] for r in rounds]),
        "sum_of_fractions": median([r["sum"] for r in rounds]),
        "llm_ttft_p50_ms_alone": median([r["llm_alone"]["ttft_p50_ms"] for r in rounds]),
        "llm_ttft_p95_ms_alone": median([r["llm_alone"]["ttft_p95_ms"] for r in rounds]),
        "llm_ttft_p50_ms_mixed": median([r["llm_mixed"]["ttft_p50_ms"] for r in rounds]),
        "llm_ttft_p95_ms_mixed": median([r["llm_mixed"]["ttft_p95_ms"] for r in rounds]),
    }
    table = Table("measure", "alone", "under the mix", "fraction", title="mixed load (medians)")
    table.add_row("LLM tok/s (8 streams)", f"{summary['llm_alone_tok_per_s']:.1f}",
                  f"{summary['llm_mixed_tok_per_s']:.1f}", f"{summary['llm_fraction']:.2f}")  # fmt: skip
    table.add_row("embeddings texts/s (16 clients)", f"{summary['embeddings_alone_per_s']:.1f}",
                  f"{summary['embeddings_mixed_per_s']:.1f}", f"{summary['embeddings_fraction']:.2f}")  # fmt: skip
    table.add_row("LLM TTFT p50 / p95 ms", f"{summary['llm_ttft_p50_ms_alone']:.0f} / {summary['llm_ttft_p95_ms_alone']:.0f}",
                  f"{summary['llm_ttft_p50_ms_mixed']:.0f} / {summary['llm_ttft_p95_ms_mixed']:.0f}", "")  # fmt: skip
    console.print(table)
    console.print(f"sum of fractions: {summary['sum_of_fractions']:.2f} (target >= 0.9)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "mixed_load" + "".join(f"_{p}" for p in args.env).replace("/", "-")
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"args": vars(args), "summary": summary, "rounds": rounds}, indent=2)
    )


if __name__ == "__main__":
    main()
