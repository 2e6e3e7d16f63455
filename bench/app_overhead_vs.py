"""The app's CPU per request at this checkout against an earlier commit, in alternating runs.

Each run measures one route with this checkout's ``bench/app_overhead.py`` (fake engines,
requests handed straight to the ASGI app) in a fresh process, on the earlier commit's code
(checked out in a temporary git worktree) and on this checkout's, in turn; the figure is the median of
the runs' medians, and their ratio.

    .venv/bin/python -m bench.app_overhead_vs --base 6282869 [--routes embeddings models chat] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(checkout: Path, route: str, requests: int) -> float:
    """This checkout's bench script, run on ``checkout``'s code (the same measurement for both)."""
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}"}
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "app_overhead.py"),
            "--route",
            route,
            "--requests",
            str(requests),
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["us_per_request_median"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the earlier commit")
    parser.add_argument("--routes", nargs="+", default=["embeddings", "models", "chat"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hearth-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            results: dict[str, dict[str, list[float]]] = {}
            for route in args.routes:
                runs: dict[str, list[float]] = {"base": [], "head": []}
                for index in range(args.runs):
                    order = [("base", base), ("head", ROOT)]
                    for side, checkout in order if index % 2 == 0 else reversed(order):
                        runs[side].append(one_run(checkout, route, args.requests))
                results[route] = runs
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    print(f"| route | {args.base} µs/request (runs) | this checkout µs/request (runs) | ratio |")
    print("|---|---|---|---|")
    for route, runs in results.items():
        base_us, head_us = statistics.median(runs["base"]), statistics.median(runs["head"])
        print(
            f"| {route} | {base_us:.1f} ({', '.join(f'{r:.1f}' for r in runs['base'])}) | "
            f"{head_us:.1f} ({', '.join(f'{r:.1f}' for r in runs['head'])}) | {head_us / base_us:.2f} |"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
