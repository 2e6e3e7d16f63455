"""Concurrent streaming load on ``/v1/completions``: aggregate tok/s and TTFT p50/p95.

It counts exactly as ``shared/bench/llm_load.py`` does (the usage chunk's completion tokens,
time to the first non-empty text chunk), and adds the 95th percentile of TTFT.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PROMPTS = [
    "The history of the city of Rome",
    "A recipe for bread starts with",
    "In computer networks, a port is",
    "The best way to learn Python is",
    "Once upon a time in a small village",
    "The theory of relativity says",
    "Containers differ from virtual machines because",
    "My favourite season is",
]


@dataclass
class LoadResult:
    concurrency: int
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    ttft_s: list[float] = field(default_factory=list)

    @property
    def tok_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.ttft_s:
            return float("nan")
        ordered = sorted(self.ttft_s)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "completion_tokens": self.tokens,
            "wall_s": round(self.wall_s, 2),
            "tok_per_s": round(self.tok_per_s, 1),
            "ttft_p50_ms": round(statistics.median(self.ttft_s) * 1000, 1) if self.ttft_s else None,
            "ttft_p95_ms": round(self.percentile(0.95) * 1000, 1) if self.ttft_s else None,
        }


async def _worker(
    client: httpx.AsyncClient,
    base: str,
    i: int,
    n: int,
    max_tokens: int,
    model: str,
    headers: dict[str, str],
    out: LoadResult,
) -> None:
    for j in range(n):
        body = {
            "model": model,
            "prompt": PROMPTS[(i + j) % len(PROMPTS)],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started, first, usage, pieces = time.perf_counter(), None, None, 0
        try:
            async with client.stream("POST", base + "/v1/completions", json=body, headers=headers) as reply:
                if reply.status_code != 200:
                    out.errors += 1
                    await reply.aread()
                    continue
                async for line in reply.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    usage = event.get("usage") or usage
                    choices = event.get("choices") or []
                    if choices and choices[0].get("text"):
                        first = first or time.perf_counter() - started
                        pieces += 1
        except httpx.HTTPError:
            out.errors += 1
            continue
        out.tokens += usage["completion_tokens"] if usage else pieces
        out.requests += 1
        if first is not None:
            out.ttft_s.append(first)


async def run(
    base: str, concurrency: int, per_worker: int, max_tokens: int, model: str, key: str | None = None
) -> LoadResult:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    result = LoadResult(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _worker(client, base.rstrip("/"), i, per_worker, max_tokens, model, headers, result)
                for i in range(concurrency)
            )
        )
        result.wall_s = time.perf_counter() - started
    return result
