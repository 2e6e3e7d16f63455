"""Which engine class serves which backend, and the set of loaded models.

Engine classes are imported lazily so that a server configured with only GGUF models never
imports torch, and tests with fake engines import neither.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from hearth.config import ModelKind, ModelSpec
from hearth.engines.base import Engine, EngineActivity
from hearth.errors import InvalidRequest, ModelNotFound, NotReady

log = logging.getLogger("hearth.engines")

_BACKENDS: dict[tuple[str, ModelKind], str] = {
    ("llama.cpp", ModelKind.CHAT): "hearth.engines.llama:LlamaEngine",
    ("sentence-transformers", ModelKind.EMBEDDING): "hearth.engines.embeddings:SentenceTransformerEngine",
    ("efficientnet", ModelKind.IMAGE_CLASSIFICATION): "hearth.engines.vision:EfficientNetEngine",
    ("fake", ModelKind.CHAT): "hearth.engines.fake:FakeChatEngine",
    ("fake", ModelKind.EMBEDDING): "hearth.engines.fake:FakeEmbeddingEngine",
    ("fake", ModelKind.IMAGE_CLASSIFICATION): "hearth.engines.fake:FakeClassifierEngine",
}

E = TypeVar("E", bound=Engine)
LoadState = Literal["pending", "loading", "ready", "failed"]


def engine_class(spec: ModelSpec) -> type[Engine]:
    target = _BACKENDS.get((spec.backend, spec.kind))
    if target is None:
        raise ValueError(f"model {spec.id}: backend {spec.backend!r} cannot serve kind {spec.kind.value!r}")
    module, _, name = target.partition(":")
    cls: type[Engine] = getattr(importlib.import_module(module), name)
    return cls


@dataclass
class Slot:
    spec: ModelSpec
    state: LoadState = "pending"
    engine: Engine | None = None
    error: str | None = None
    load_seconds: float | None = None


class ModelRegistry:
    def __init__(self, specs: list[ModelSpec], data_dir: Path) -> None:
        self.data_dir = data_dir
        self._slots = {spec.id: Slot(spec) for spec in specs}
        self._names: dict[str, str] = {}
        for spec in specs:
            for name in (spec.id, *spec.aliases):
                if name in self._names:
                    raise ValueError(f"model name {name!r} is used twice in the models config")
                self._names[name] = spec.id

    @property
    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def spec(self, name: str) -> ModelSpec:
        model_id = self._names.get(name)
        if model_id is None:
            raise ModelNotFound(f"the model {name!r} does not exist", param="model")
        return self._slots[model_id].spec

    def slot(self, model_id: str) -> Slot:
        return self._slots[model_id]

    def get(self, name: str, cls: type[E]) -> E:
        """The loaded engine for ``name`` (id or alias), checked to serve ``cls``'s capability."""
        slot = self._slots[self.spec(name).id]
        if slot.engine is None:
            detail = f"failed to load: {slot.error}" if slot.state == "failed" else "is still loading"
            raise NotReady(f"the model {slot.spec.id!r} {detail}", retry_after=2)
        if not isinstance(slot.engine, cls):
            raise InvalidRequest(
                f"the model {slot.spec.id!r} is a {slot.spec.kind.value} model and cannot serve this route",
                param="model",
                code="model_not_supported",
            )
        return slot.engine

    def first_of_kind(self, kind: ModelKind) -> ModelSpec | None:
        return next((s.spec for s in self._slots.values() if s.spec.kind == kind), None)

    def activities(self) -> dict[str, EngineActivity]:
        return {s.spec.id: s.engine.activity() for s in self._slots.values() if s.engine is not None}

    def not_ready_reasons(self) -> list[str]:
        return [
            f"{s.spec.id}: {s.state}" + (f" ({s.error})" if s.error else "")
            for s in self._slots.values()
            if s.state != "ready"
        ]

    async def load_all(self) -> None:
        """Load every model in parallel worker threads; a failure marks that model, not the server."""
        await asyncio.gather(*(asyncio.to_thread(self._load, slot) for slot in self._slots.values()))

    def _load(self, slot: Slot) -> None:
        slot.state = "loading"
        started = time.perf_counter()
        try:
            engine = engine_class(slot.spec)(slot.spec, self.data_dir)
            engine.load()
        except Exception as exc:
            slot.state, slot.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("model %s failed to load", slot.spec.id)
            return
        slot.engine, slot.state = engine, "ready"
        slot.load_seconds = time.perf_counter() - started
        log.info("model %s ready in %.2fs", slot.spec.id, slot.load_seconds)

    def close(self) -> None:
        for slot in self._slots.values():
            if slot.engine is not None:
                slot.engine.close()
