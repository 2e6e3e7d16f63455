"""Gateway overhead: the same cheap route with auth, limits and ledger on versus off, one run.

"Off" is ``--no-auth`` (no key check, no limits, and no ledger row for ``/v1/models``); "on" is
a key with request and token limits, every request checked and written to the ledger. Load
comes from ``wrk`` (C, keep-alive), so the client is not the bottleneck; rounds alternate.

    .venv/bin/python bench/gateway_overhead.py [--route /v1/models] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import track
from rich.table import Table

from bench.common import RESULTS, free_ports, median, start_hearth, stop, wait_http, wrk

console = Console()
MODELS = '[{"id": "gemma-3-270m", "kind": "chat", "backend": "fake", "source": "-"}, {"id": "all-minilm-l6-v2", "kind": "embedding", "backend": "fake", "source": "-"}]'
ADMIN = "bench-admin-secret"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--route", default="/v1/models")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    root = Path(tempfile.mkdtemp(prefix="hearth-gw-"))
    env = {"HEARTH_MODELS": MODELS, "HEARTH_ADMIN_KEY": ADMIN}
    off_port, on_port = free_ports(2)
    off = start_hearth(root / "off", off_port, "--no-auth", env=env)
    on = start_hearth(root / "on", on_port, env=env)
    try:
        wait_http(f"http://127.0.0.1:{off_port}/ready")
        wait_http(f"http://127.0.0.1:{on_port}/ready")
        key = httpx.post(
            f"http://127.0.0.1:{on_port}/admin/keys",
            json={"name": "bench", "rpm": 10_000_000, "tpm": 10_000_000_000, "max_concurrent": 1000},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ).json()["secret"]
        runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        for _ in track(range(args.rounds), description="alternating gateway off/on"):
            runs["off"].append(
                wrk(f"http://127.0.0.1:{off_port}{args.route}", args.seconds, args.connections, None)
            )
            runs["on"].append(
                wrk(
                    f"http://127.0.0.1:{on_port}{args.route}",
                    args.seconds,
                    args.connections,
                    f"Authorization: Bearer {key}",
                )
            )
        ledger_rows = httpx.get(
            f"http://127.0.0.1:{on_port}/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()["requests"]
    finally:
        stop(off)
        stop(on)
    summary = {
        name: {m: median([r[m] for r in rs]) for m in ("rps", "p50_ms", "non_2xx")}
        for name, rs in runs.items()
    }
    ratio = summary["on"]["rps"] / summary["off"]["rps"]
    delta = summary["on"]["p50_ms"] - summary["off"]["p50_ms"]
    table = Table(
        "gateway",
        "req/s (median)",
        "p50 ms (median)",
        "non-2xx",
        title=f"{args.route}, {args.connections} connections",
    )
    for name in ("off", "on"):
        table.add_row(
            name,
            f"{summary[name]['rps']:.0f}",
            f"{summary[name]['p50_ms']:.2f}",
            f"{summary[name]['non_2xx']:.0f}",
        )
    console.print(table)
    console.print(
        f"throughput ratio on/off = {ratio:.2f}; p50 latency +{delta:.2f} ms; ledger rows written: {ledger_rows}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "args": vars(args),
        "summary": summary,
        "ratio": ratio,
        "p50_delta_ms": delta,
        "runs": runs,
        "ledger_rows": ledger_rows,
    }
    (RESULTS / "gateway_overhead.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
