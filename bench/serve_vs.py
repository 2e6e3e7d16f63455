"""The default ``hearth serve`` at this checkout against an earlier commit, in alternating rounds.

Both servers are what a user starts (the four default models, a key, the SQLite ledger): one
runs the earlier commit's code (checked out in a temporary git worktree), the other this
checkout's. They are up side by side and take the load in turn, the order alternating every
round: streaming ``/v1/completions`` on gemma-3-270m at each concurrency (128 tokens, greedy),
then 32 ``wrk`` clients posting one text each to ``/v1/embeddings``. The figures are medians,
with each round's ratio (this checkout / the earlier commit).

    .venv/bin/python -m bench.serve_vs --base 6282869 [--rounds 3] [--concurrency 1 8] [--seconds 8]
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

from bench.common import RESULTS, ROOT, free_ports, median, require, start_default_hearth, stop, wait_http
from bench.embeddings_bench import wrk_load
from bench.load import run

console = Console()


def measure(base_url: str, key: str, concurrency: list[int], seconds: float) -> dict[str, float]:
    found: dict[str, float] = {}
    for c in concurrency:
        per_worker = max(1, 16 // c) if c < 8 else 2
        result = asyncio.run(run(base_url, c, per_worker, 128, "gemma-3-270m", key))
        found[f"llm_{c}_tok_per_s"] = result.tok_per_s
        found[f"llm_{c}_ttft_p50_ms"] = result.as_dict()["ttft_p50_ms"]
    found["embeddings_32_texts_per_s"] = wrk_load(base_url, 32, seconds, key)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8], help="none: embeddings only")
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    require("wrk", "a load generator that costs little CPU", "apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="hearth-serve-vs-"))
    checkout = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(checkout), args.base], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    ports = free_ports(2)
    servers: dict[str, tuple[Any, str, str]] = {}
    rounds: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    try:
        servers["base"] = start_default_hearth(work / "b", ports[0], {"PYTHONPATH": str(checkout / "src")})
        servers["head"] = start_default_hearth(work / "h", ports[1])
        for _, url, key in servers.values():
            wait_http(url + "/ready")
            measure(url, key, [2] if args.concurrency else [], 2)  # warm-up
        for index in range(args.rounds):
            order = ["base", "head"] if index % 2 == 0 else ["head", "base"]
            for side in order:
                _, url, key = servers[side]
                console.print(f"round {index + 1}: {side}")
                rounds[side].append(measure(url, key, args.concurrency, args.seconds))
    finally:
        for process, _, _ in servers.values():
            stop(process)
        subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, check=False)
    console.print(f"| figure | {args.base} (median) | this checkout (median) | ratio | per round |")
    console.print("|---|---|---|---|---|")
    for name in rounds["head"][0]:
        base_values = [r[name] for r in rounds["base"]]
        head_values = [r[name] for r in rounds["head"]]
        per_round = ", ".join(f"{h / b:.2f}" for h, b in zip(head_values, base_values, strict=True))
        console.print(
            f"| {name} | {median(base_values):.1f} | {median(head_values):.1f} | "
            f"{median(head_values) / median(base_values):.2f} | {per_round} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_vs.json").write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
