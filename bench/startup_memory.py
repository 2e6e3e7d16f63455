"""Time to ready and resident memory of ``hearth serve`` with the default models.

The first start assembles the GGUF into the data dir; the starts measured afterwards are the
ones a user sees every day ("ready in <= 5 s once the models are assembled").

    .venv/bin/python -m bench.startup_memory [--starts 5] [--versus HEARTH_TORCH_ENGINES=inline]
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import track

from bench.common import RESULTS, env_pairs, free_port, median, rss_mb, start_hearth, stop, wait_http

console = Console()


def exercise(base: str) -> None:
    """One request per model, so memory includes what first use allocates."""
    import skimage.data

    cat = (Path(skimage.data.__file__).parent / "chelsea.png").read_bytes()
    httpx.post(
        base + "/v1/chat/completions",
        json={"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        timeout=60,
    )
    httpx.post(
        base + "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": ["hello"] * 32}, timeout=60
    )
    httpx.post(base + "/v1/classify", json={"image": base64.b64encode(cat).decode()}, timeout=60)


def one_start(data_dir: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds to ``/ready``, then resident MiB (server and its model worker) idle and after use."""
    port = free_port()
    process = start_hearth(data_dir, port, "--no-auth", env=env)
    try:
        ready = wait_http(f"http://127.0.0.1:{port}/ready")
        idle = rss_mb(process.pid)
        exercise(f"http://127.0.0.1:{port}")
        return ready, idle, rss_mb(process.pid)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="also start a server with this setting, alternating with the default one "
        "(e.g. HEARTH_TORCH_ENGINES=inline); repeat for several settings of one variant",
    )
    args = parser.parse_args()
    variants = {"default": {}} | ({" ".join(args.versus): env_pairs(args.versus)} if args.versus else {})
    data_dir = Path(tempfile.mkdtemp(prefix="hearth-start-")) / "data"
    port = free_port()
    first = start_hearth(data_dir, port, "--no-auth")
    first_ready = wait_http(f"http://127.0.0.1:{port}/ready")
    stop(first)
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    for _ in track(range(args.starts), description="starting hearth serve"):
        for name, env in variants.items():  # alternating, so a noisy minute hits both
            runs[name].append(one_start(data_dir, env))
    result: dict[str, object] = {"first_start_ready_s": round(first_ready, 2)}
    for name, starts in runs.items():
        ready = [r for r, _, _ in starts]
        result[name] = {
            "ready_s_median": round(median(ready), 2),
            "ready_s": [round(r, 2) for r in ready],
            "rss_mb_after_load_median": round(median([i for _, i, _ in starts]), 1),
            "rss_mb_after_requests_median": round(median([u for _, _, u in starts]), 1),
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup_memory.json").write_text(json.dumps(result, indent=2))
    console.print(result)


if __name__ == "__main__":
    main()
