"""Batch jobs on the default ``hearth serve`` (auth on, a key, the SQLite ledger), three figures:

1. **Embeddings.** A batch of 1,000 single-text embedding lines, from ``POST /v1/batches`` until
   the batch is ``completed``, in texts/s. Two anchors, each measured right after a batch: the
   model in Hearth's own engine (llama.cpp) encoding the same texts in batches of 64 in this
   process, and sentence-transformers' ``encode`` of them on torch (batch 64).
2. **Chat.** A batch of 200 ``/v1/completions`` lines (the same prompts and ``max_tokens`` as
   the load generator), in completion tokens/s. The anchor is 8 concurrent streams on the same
   server (``shared/bench/llm_load.py``).
3. **Interactive latency.** While a batch of 400 chat lines runs, one client sends single
   requests, each a new prompt; its time to first token p50 is set against the same client on
   the idle server. Also with the client repeating eight prompts: the idle server's eight slots
   keep those cached, and the batch's sequences take seven of them.

Rounds alternate between each figure and its anchor.

    .venv/bin/python -m bench.batches [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.common import RESULTS, free_port, run_load, start_default_hearth, stop, wait_http
from bench.embeddings_bench import anchor_model

console = Console()
MODEL = "smollm2-135m-instruct"
PROMPTS = ["The history of the city of Rome", "A recipe for bread starts with",
           "In computer networks, a port is", "The best way to learn Python is",
           "Once upon a time in a small village", "The theory of relativity says",
           "Containers differ from virtual machines because", "My favourite season is"]  # fmt: skip
MAX_TOKENS = 64
TEXTS = [
    f"Sentence number {i} about cats, containers, bread and the theory of relativity." for i in range(1000)
]


def submit(http: httpx.Client, base: str, endpoint: str, lines: list[dict[str, Any]]) -> str:
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = http.post(base + "/v1/files", files={"file": ("b.jsonl", content)}, data={"purpose": "batch"})
    uploaded.raise_for_status()
    made = http.post(base + "/v1/batches", json={"input_file_id": uploaded.json()["id"], "endpoint": endpoint,
                                                 "completion_window": "24h"})  # fmt: skip
    made.raise_for_status()
    return str(made.json()["id"])


def finish(http: httpx.Client, base: str, batch_id: str) -> dict[str, Any]:
    while True:
        batch: dict[str, Any] = http.get(f"{base}/v1/batches/{batch_id}").json()
        if batch["status"] in ("completed", "failed", "cancelled", "expired"):
            assert batch["status"] == "completed", batch
            return batch
        time.sleep(0.2)  # a client polling often; the SDK examples wait seconds


def completion_lines(n: int) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions",
         "body": {"model": MODEL, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": MAX_TOKENS, "temperature": 0.0}}
        for i in range(n)
    ]  # fmt: skip


def embedding_batch(http: httpx.Client, base: str) -> float:
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "all-minilm-l6-v2", "input": text}} for i, text in enumerate(TEXTS)]  # fmt: skip
    started = time.perf_counter()
    finish(http, base, submit(http, base, "/v1/embeddings", lines))
    return len(TEXTS) / (time.perf_counter() - started)


class EngineAnchor:
    """Hearth's own embedding engine (MiniLM on llama.cpp, as the server runs it) in this
    process, fed batches of 64: what the batch job's plumbing is measured against."""

    def __init__(self, data_dir: Path) -> None:
        from hearth.config import default_models
        from hearth.engines.context import EngineContext
        from hearth.engines.llama.embedding import LlamaEmbeddingEngine

        spec = next(s for s in default_models() if s.id == "all-minilm-l6-v2")
        self.engine = LlamaEmbeddingEngine(spec, EngineContext(data_dir))
        self.engine.load()

    def texts_per_s(self) -> float:
        async def run() -> float:
            started = time.perf_counter()
            for i in range(0, len(TEXTS), 64):
                await self.engine.embed(TEXTS[i : i + 64])
            return len(TEXTS) / (time.perf_counter() - started)

        return asyncio.run(run())


def embedding_anchor() -> float:
    model = anchor_model()
    started = time.perf_counter()
    model.encode(TEXTS, batch_size=64)
    return len(TEXTS) / (time.perf_counter() - started)


def chat_batch(http: httpx.Client, base: str) -> float:
    started = time.perf_counter()
    batch = finish(http, base, submit(http, base, "/v1/completions", completion_lines(200)))
    elapsed = time.perf_counter() - started
    output = http.get(f"{base}/v1/files/{batch['output_file_id']}/content").text
    tokens = sum(
        json.loads(row)["response"]["body"]["usage"]["completion_tokens"] for row in output.splitlines()
    )
    return tokens / elapsed


_asked = iter(range(10**9))


def interactive_ttft(
    http: httpx.Client, base: str, until: threading.Event | None, n: int = 30, *, fresh: bool = True
) -> float:
    """One client's time to first token (p50) on single streamed completions. ``fresh``: every
    prompt is new (a numbered request), so no slot holds it already; otherwise the client
    repeats the eight prompts, which an idle server's eight slots keep cached."""
    waits = []
    for i in range(n):
        prompt = PROMPTS[i % len(PROMPTS)]
        if fresh:
            prompt = f"Note {next(_asked)}. {prompt}"
        body = {"model": MODEL, "prompt": prompt, "max_tokens": 8, "stream": True}
        began = time.perf_counter()
        with http.stream("POST", base + "/v1/completions", json=body) as reply:
            lines = reply.iter_lines()
            for line in lines:
                if line.startswith("data:") and '"text"' in line:
                    waits.append(time.perf_counter() - began)
                    break
            for _ in lines:  # read the rest of the answer from the same iterator
                pass
        if until is not None and until.is_set():
            break
        time.sleep(0.2)
    return statistics.median(waits) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--only", choices=("embeddings", "chat", "ttft"), help="measure one figure and its anchor"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server, base, key = start_default_hearth(Path(tmp) / "work", port)
        http = httpx.Client(timeout=600, headers={"Authorization": f"Bearer {key}"})
        figures: dict[str, list[float]] = {k: [] for k in (
            "batch_texts_per_s", "batch_texts_per_s_2", "engine_texts_per_s", "encode_texts_per_s",
            "batch_tokens_per_s", "streams_tokens_per_s",
            "ttft_idle_ms", "ttft_under_batch_ms", "ttft_idle_repeat_ms", "ttft_under_batch_repeat_ms")}  # fmt: skip
        try:
            wait_http(base + "/ready")
            engine = EngineAnchor(Path(tmp) / "anchor")
            embedding_anchor(), engine.texts_per_s(), interactive_ttft(http, base, None, 2)  # warm them
            for round_ in range(args.rounds):
                pairs = []
                if args.only in (None, "embeddings"):
                    pairs += [
                        ("batch_texts_per_s", lambda: embedding_batch(http, base)),
                        ("engine_texts_per_s", engine.texts_per_s),
                        ("batch_texts_per_s_2", lambda: embedding_batch(http, base)),
                        ("encode_texts_per_s", embedding_anchor),
                    ]
                if args.only in (None, "chat"):
                    pairs += [
                        ("batch_tokens_per_s", lambda: chat_batch(http, base)),
                        (
                            "streams_tokens_per_s",
                            lambda: float(run_load(base, 8, 25, MAX_TOKENS, MODEL, key)["tok_per_s"]),
                        ),
                    ]
                for i in range(0, len(pairs), 2):
                    first, second = pairs[i : i + 2]
                    for name, measure in (first, second) if round_ % 2 == 0 else (second, first):
                        figures[name].append(measure())
                        console.print(f"round {round_ + 1} {name}: {figures[name][-1]:.1f}")
                if args.only not in (None, "ttft"):
                    continue
                figures["ttft_idle_ms"].append(interactive_ttft(http, base, None))
                figures["ttft_idle_repeat_ms"].append(interactive_ttft(http, base, None, fresh=False))
                done = threading.Event()
                batch_id = submit(http, base, "/v1/completions", completion_lines(400))
                time.sleep(2)  # the batch is under way
                figures["ttft_under_batch_ms"].append(interactive_ttft(http, base, done))
                figures["ttft_under_batch_repeat_ms"].append(interactive_ttft(http, base, done, fresh=False))
                http.post(f"{base}/v1/batches/{batch_id}/cancel")
                while http.get(f"{base}/v1/batches/{batch_id}").json()["status"] not in (
                    "cancelled",
                    "completed",
                ):
                    time.sleep(0.2)
                console.print(f"round {round_ + 1} ttft idle {figures['ttft_idle_ms'][-1]:.0f} ms, "
                              f"under a batch {figures['ttft_under_batch_ms'][-1]:.0f} ms; repeated prompts "
                              f"{figures['ttft_idle_repeat_ms'][-1]:.0f} / "
                              f"{figures['ttft_under_batch_repeat_ms'][-1]:.0f} ms")  # fmt: skip
        finally:
            http.close()
            stop(server)
    med = {name: statistics.median(values) for name, values in figures.items() if values}
    if figures["batch_texts_per_s_2"]:  # each anchor is measured beside a batch of its own
        med["batch_texts_per_s"] = statistics.median(
            figures["batch_texts_per_s"] + figures["batch_texts_per_s_2"]
        )
    ratios = {
        "embeddings_ratio_to_engine": ("batch_texts_per_s", "engine_texts_per_s"),
        "embeddings_ratio_to_torch": ("batch_texts_per_s", "encode_texts_per_s"),
        "chat_ratio": ("batch_tokens_per_s", "streams_tokens_per_s"),
        "ttft_ratio": ("ttft_under_batch_ms", "ttft_idle_ms"),
        "ttft_ratio_repeated_prompts": ("ttft_under_batch_repeat_ms", "ttft_idle_repeat_ms"),
    }
    result: dict[str, Any] = {"rounds": figures, "median": med}
    result.update({name: med[a] / med[b] for name, (a, b) in ratios.items() if a in med and b in med})
    console.print_json(json.dumps(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"batches{'-' + args.only if args.only else ''}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
