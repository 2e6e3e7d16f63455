"""Time to ready and resident memory of ``hearth serve`` with the three default models.

The first start assembles the GGUF into the data dir; the starts measured afterwards are the
ones a user sees every day ("ready in <= 5 s once the models are assembled").

    .venv/bin/python bench/startup_memory.py [--starts 5]
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

from bench.common import RESULTS, free_port, median, rss_mb, start_hearth, stop, wait_http

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="hearth-start-")) / "data"
    port = free_port()
    first = start_hearth(data_dir, port, "--no-auth")
    first_ready = wait_http(f"http://127.0.0.1:{port}/ready")
    stop(first)
    ready, rss_idle, rss_used = [], [], []
    for _ in track(range(args.starts), description="starting hearth serve"):
        port = free_port()
        process = start_hearth(data_dir, port, "--no-auth")
        ready.append(wait_http(f"http://127.0.0.1:{port}/ready"))
        rss_idle.append(rss_mb(process.pid))
        exercise(f"http://127.0.0.1:{port}")
        rss_used.append(rss_mb(process.pid))
        stop(process)
    result = {
        "first_start_ready_s": round(first_ready, 2),
        "ready_s_median": round(median(ready), 2),
        "ready_s": [round(r, 2) for r in ready],
        "rss_mb_after_load_median": round(median(rss_idle), 1),
        "rss_mb_after_requests_median": round(median(rss_used), 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup_memory.json").write_text(json.dumps(result, indent=2))
    console.print(result)


if __name__ == "__main__":
    main()
