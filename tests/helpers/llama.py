"""The default chat model's GGUF on a llama.cpp engine of the slots and context a test needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hearth.config import SMOLLM2_SOURCE, ModelKind, ModelSpec
from hearth.engines.context import EngineContext
from hearth.engines.llama import LlamaEngine


@contextmanager
def smollm2_engine(
    data_dir: Path, *, slots: int, context_length: int, options: dict[str, Any] | None = None
) -> Iterator[LlamaEngine]:
    spec = ModelSpec(
        id="smollm2", kind=ModelKind.CHAT, backend="llama.cpp", source=SMOLLM2_SOURCE,
        context_length=context_length, slots=slots, threads=2, options=options or {},
    )  # fmt: skip
    engine = LlamaEngine(spec, EngineContext(data_dir))
    engine.load()
    try:
        yield engine
    finally:
        engine.close()
