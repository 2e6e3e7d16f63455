"""In-process probes behind the embeddings figures: what a forward pass costs, and what takes it.

- ``encode`` throughput by batch size (the server's batches follow its clients, not 32);
- ``encode`` with a pure-Python thread beside it, busy 0.5 ms of every 3 ms (~17 %, the event
  loop's share under 32 HTTP clients), to show the 2-core contention;
- with ``--jit``, the same with the BERT encoder traced and frozen (``torch.jit``) at varying
  batch sizes: an option that was measured and dropped.

    .venv/bin/python -m bench.embeddings_contention [--rounds 5] [--jit]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import track

from bench.common import RESULTS, median
from bench.embeddings_bench import TEXTS, anchor_model

console = Console()
Encode = Callable[[list[str]], Any]


def rate(encode: Encode, sizes: list[int], seconds: float) -> float:
    n, i, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        size = sizes[i % len(sizes)]
        encode(TEXTS[i % 400 : i % 400 + size])
        n, i = n + size, i + 1
    return n / (time.perf_counter() - started)


class BusyThread:
    """Pure Python work for ``busy_s`` of every ``busy_s + idle_s``, while switched on."""

    def __init__(self, busy_s: float = 0.0005, idle_s: float = 0.0025) -> None:
        self.on = threading.Event()
        self._busy_s, self._idle_s = busy_s, idle_s
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.on.wait()
            until, spins = time.perf_counter() + self._busy_s, 0
            while time.perf_counter() < until:
                spins += 1
            time.sleep(self._idle_s)


def traced_encoder(model: Any) -> Encode:
    import torch

    bert = model[0].auto_model

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types, return_dict=False)[0]

    # Traced on a padded batch, so the attention mask is part of the graph.
    sample = model.tokenize([TEXTS[0], "short"])
    with torch.inference_mode():
        args = (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"])
        traced = torch.jit.freeze(torch.jit.trace(Encoder().eval(), args, check_trace=False))

    def encode(texts: list[str]) -> Any:
        features = model.tokenize(texts)
        with torch.inference_mode():
            hidden = traced(features["input_ids"], features["attention_mask"], features["token_type_ids"])
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    return encode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--jit", action="store_true")
    args = parser.parse_args()
    model = anchor_model()

    def eager(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=len(texts), normalize_embeddings=True)

    by_size: dict[int, list[float]] = {b: [] for b in (1, 2, 4, 8, 16, 32, 64)}
    contention: dict[str, list[float]] = {"alone": [], "beside a 17 % Python thread": []}
    busy = BusyThread()
    mixed = [random.Random(0).randint(1, 32) for _ in range(2000)]
    encoders: dict[str, Encode] = {"eager": eager}
    if args.jit:
        encoders["jit"] = traced_encoder(model)
    varying: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in track(range(args.rounds), description="encode probes"):
        for size, rates in by_size.items():
            rates.append(rate(eager, [size], args.seconds))
        contention["alone"].append(rate(eager, [16], args.seconds))
        busy.on.set()
        contention["beside a 17 % Python thread"].append(rate(eager, [16], args.seconds))
        busy.on.clear()
        for name, encode in encoders.items():
            varying[name].append(rate(encode, mixed, args.seconds))
    result = {
        "texts_per_s_by_batch": {b: round(median(r), 1) for b, r in by_size.items()},
        "batch16_texts_per_s": {k: round(median(r), 1) for k, r in contention.items()},
        "batches_1_to_32_texts_per_s": {k: round(median(r), 1) for k, r in varying.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embeddings_contention.json").write_text(json.dumps(result, indent=2))
    console.print(result)


if __name__ == "__main__":
    main()
