"""Hearth in front of a real llama-server against the same llama-server reached directly.

One llama-server (gemma-3-270m Q4_K_M, 8 slots, one unified KV pool, 2 threads) serves both
paths; Hearth runs as an operator runs it in front of an engine: auth on with a key, the SQLite
ledger writing a usage row per request, the upstream model from a config file. Rounds
alternate direct and through-Hearth, and the report gives medians of aggregate tok/s and TTFT.

    .venv/bin/python -m bench.upstream_passthrough [--concurrency 1 8] [--rounds 5]

Needs the reference build (``bench/build_llama_server.sh``, about 4 minutes once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.common import (
    RESULTS,
    free_ports,
    llama_server_binary,
    median,
    start_default_hearth,
    stop,
    wait_http,
)
from bench.llm_vs_llama_server import gguf_path
from bench.load import run

console = Console()
MODEL = "gemma-3-270m"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=16, help="requests per round")
    args = parser.parse_args()
    binary = llama_server_binary()
    work = Path(tempfile.mkdtemp(prefix="hearth-passthrough-"))
    model = gguf_path(work / "data")
    hearth_port, llama_port = free_ports(2)
    llama = subprocess.Popen(
        [binary, "-m", str(model), "-t", "2", "--parallel", "8", "-c", "32768", "--kv-unified",
         "--port", str(llama_port), "--host", "127.0.0.1", "--log-disable", "--metrics"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    direct = f"http://127.0.0.1:{llama_port}"
    config = work / "upstream.yaml"
    config.write_text(f"models:\n  - {{id: {MODEL}, kind: chat, backend: openai, source: {direct}/v1}}\n")
    hearth, front, key = start_default_hearth(work, hearth_port, env={"HEARTH_CONFIG": str(config)})
    targets: dict[str, tuple[str, str | None]] = {"direct": (direct, None), "hearth": (front, key)}
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in targets}
    try:
        wait_http(direct + "/health")
        wait_http(front + "/ready")
        for base, secret in targets.values():  # warm both paths
            asyncio.run(run(base, 2, 1, 16, MODEL, secret))
        with Progress(console=console) as progress:
            task = progress.add_task("alternating", total=len(args.concurrency) * args.rounds * 2)
            for c in args.concurrency:
                per_worker = max(1, args.requests // c)
                for _ in range(args.rounds):
                    for name, (base, secret) in targets.items():
                        progress.update(task, description=f"{name} c={c}")
                        result = asyncio.run(run(base, c, per_worker, args.max_tokens, MODEL, secret))
                        runs[name].setdefault(c, []).append(result.as_dict())
                        progress.advance(task)
        ledger_rows = ledger_count(work / "data")
    finally:
        stop(hearth)
        stop(llama)
    report(runs, args, ledger_rows)


def ledger_count(data_dir: Path) -> int:
    """Usage rows the front wrote: proof the measured path includes the ledger."""
    import sqlite3

    with sqlite3.connect(data_dir / "hearth.db") as db:
        return int(db.execute("select count(*) from usage_records").fetchone()[0])


def report(runs: dict[str, dict[int, list[dict[str, Any]]]], args: argparse.Namespace, rows: int) -> None:
    table = Table(
        "streams", "direct tok/s", "hearth tok/s", "ratio", "per-round ratios",
        "TTFT p50 direct/hearth ms", "errors", title="Hearth in front of llama-server (medians)",
    )  # fmt: skip
    summary: dict[int, dict[str, Any]] = {}
    for c in args.concurrency:
        direct, front = runs["direct"][c], runs["hearth"][c]
        per_round = [h["tok_per_s"] / d["tok_per_s"] for d, h in zip(direct, front, strict=True)]
        summary[c] = {
            "direct_tok_per_s": median([r["tok_per_s"] for r in direct]),
            "hearth_tok_per_s": median([r["tok_per_s"] for r in front]),
            "direct_ttft_p50_ms": median([r["ttft_p50_ms"] for r in direct]),
            "hearth_ttft_p50_ms": median([r["ttft_p50_ms"] for r in front]),
            "round_ratios": [round(x, 3) for x in per_round],
            "errors": sum(r["errors"] for r in direct + front),
        }
        s = summary[c]
        s["ratio"] = s["hearth_tok_per_s"] / s["direct_tok_per_s"]
        table.add_row(
            str(c), f"{s['direct_tok_per_s']:.1f}", f"{s['hearth_tok_per_s']:.1f}", f"{s['ratio']:.3f}",
            " ".join(f"{x:.2f}" for x in per_round),
            f"{s['direct_ttft_p50_ms']:.0f} / {s['hearth_ttft_p50_ms']:.0f}", str(s["errors"]),
        )  # fmt: skip
    console.print(table)
    console.print(f"usage rows in the front's ledger: {rows}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "upstream_passthrough.json"
    out.write_text(
        json.dumps({"args": vars(args), "summary": summary, "runs": runs, "ledger_rows": rows}, indent=2)
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
