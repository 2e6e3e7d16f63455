"""Which engine class serves which backend, and the set of models with their life cycle.

Engine classes are imported lazily so that a server configured with only GGUF models never
imports torch, and tests with fake engines import neither.

A model's slot goes ``pending -> loading -> ready`` (or ``failed``, which leaves the others
serving). Models from the config load at start-up and decide readiness; models added at run
time (``add``) do not. ``remove`` drains: the slot refuses new requests, waits for the ones it
is serving (``acquire``/``release`` count them), then closes the engine. A model with
``keep_alive_s`` is unloaded after that long without a request (``unloaded``) and loads again
on the next one, as Ollama's ``keep_alive`` does.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from hearth.config import ModelKind, ModelSpec
from hearth.engines import worker
from hearth.engines.base import Engine, EngineActivity
from hearth.errors import InvalidRequest, ModelNotFound, NotReady

log = logging.getLogger("hearth.engines")

_BACKENDS: dict[tuple[str, ModelKind], str] = {
    ("llama.cpp", ModelKind.CHAT): "hearth.engines.llama:LlamaEngine",
    ("llama.cpp", ModelKind.EMBEDDING): "hearth.engines.llama.embedding:LlamaEmbeddingEngine",
    ("sentence-transformers", ModelKind.EMBEDDING): "hearth.engines.embeddings:SentenceTransformerEngine",
    ("efficientnet", ModelKind.IMAGE_CLASSIFICATION): "hearth.engines.vision:EfficientNetEngine",
    ("fake", ModelKind.CHAT): "hearth.engines.fake:FakeChatEngine",
    ("fake", ModelKind.EMBEDDING): "hearth.engines.fake:FakeEmbeddingEngine",
    ("fake", ModelKind.IMAGE_CLASSIFICATION): "hearth.engines.fake:FakeClassifierEngine",
}

E = TypeVar("E", bound=Engine)
LoadState = Literal["pending", "loading", "ready", "failed", "draining", "unloaded"]


def engine_class(spec: ModelSpec) -> type[Engine]:
    target = _BACKENDS.get((spec.backend, spec.kind))
    if target is None:
        raise ValueError(f"model {spec.id}: backend {spec.backend!r} cannot serve kind {spec.kind.value!r}")
    module, _, name = target.partition(":")
    cls: type[Engine] = getattr(importlib.import_module(module), name)
    return cls


def prestart_worker(specs: list[ModelSpec], mode: worker.Mode) -> None:
    """Start the torch worker process, and its imports, for the models that will run in it."""
    worker.MODE = mode
    # llama.cpp engines never run in the worker, and importing theirs takes 0.3 s: look at the
    # others first, and start the worker on the first model found, not after the loop.
    for spec in sorted(specs, key=lambda s: s.backend == "llama.cpp"):
        try:
            model = engine_class(spec).worker_model
        except (ValueError, ImportError):
            continue  # the registry reports it when it loads the model
        if model is not None:
            worker.prestart(model)


@dataclass
class Slot:
    spec: ModelSpec
    origin: Literal["config", "runtime"] = "config"
    state: LoadState = "pending"
    engine: Engine | None = None
    error: str | None = None
    load_seconds: float | None = None
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    keep_alive_s: float | None = None  # a request's keep_alive overriding the spec's (< 0: forever)
    loaded: asyncio.Event | None = None  # set when a load (or a reload) ends, either way
    idle: asyncio.Event | None = None  # set while nothing is in flight (draining waits on it)

    def keep_alive(self) -> float | None:
        """Seconds idle before unloading, or None to stay loaded."""
        if self.keep_alive_s is not None:
            return None if self.keep_alive_s < 0 else self.keep_alive_s
        return self.spec.keep_alive_s

    def expires_in(self, now: float | None = None) -> float | None:
        keep = self.keep_alive()
        if keep is None:
            return None
        idle = (time.monotonic() if now is None else now) - self.last_used
        return max(0.0, keep - idle) if not self.in_flight else keep


class ModelRegistry:
    def __init__(self, specs: list[ModelSpec], data_dir: Path) -> None:
        self.data_dir = data_dir
        self._slots: dict[str, Slot] = {}
        self._names: dict[str, str] = {}
        for spec in specs:
            self._claim(spec)
            self._slots[spec.id] = Slot(spec)
        self.changes = 0  # bumped on every add/remove, for listeners that cache views

    def _claim(self, spec: ModelSpec) -> None:
        for name in (spec.id, *spec.aliases):
            if name in self._names:
                raise InvalidRequest(f"model name {name!r} is already in use", param="id")
        for name in (spec.id, *spec.aliases):
            self._names[name] = spec.id

    @property
    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def names(self) -> dict[str, str]:
        """Every model name (id or alias) and the id it stands for."""
        return dict(self._names)

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
        if slot.engine is None or slot.state == "draining":
            raise NotReady(f"the model {slot.spec.id!r} {_unavailable(slot)}", retry_after=2)
        if not isinstance(slot.engine, cls):
            raise InvalidRequest(
                f"the model {slot.spec.id!r} is a {slot.spec.kind.value} model and cannot serve this route",
                param="model",
                code="model_not_supported",
            )
        return slot.engine

    async def acquire(self, name: str, cls: type[E]) -> tuple[Slot, E]:
        """The engine for ``name``, loading it first if keep_alive had unloaded it, counted in flight."""
        slot = self._slots[self.spec(name).id]
        if slot.state == "unloaded":
            await self._reload(slot)
        engine = self.get(name, cls)
        slot.in_flight += 1
        slot.last_used = time.monotonic()
        if slot.idle is not None:
            slot.idle.clear()
        return slot, engine

    def release(self, slot: Slot) -> None:
        slot.in_flight = max(0, slot.in_flight - 1)
        slot.last_used = time.monotonic()
        if slot.in_flight == 0 and slot.idle is not None:
            slot.idle.set()

    def first_of_kind(self, kind: ModelKind) -> ModelSpec | None:
        return next((s.spec for s in self._slots.values() if s.spec.kind == kind), None)

    def activities(self) -> dict[str, EngineActivity]:
        return {s.spec.id: s.engine.activity() for s in self._slots.values() if s.engine is not None}

    def not_ready_reasons(self) -> list[str]:
        """Why the server is not ready: a config model not (yet) serving. Run-time models don't count."""
        reasons = []
        for slot in self._slots.values():
            if slot.origin != "config":
                continue
            if slot.state not in ("ready", "unloaded"):
                reasons.append(f"{slot.spec.id}: {slot.state}" + (f" ({slot.error})" if slot.error else ""))
            elif (failure := slot.engine.failure() if slot.engine is not None else None) is not None:
                reasons.append(f"{slot.spec.id}: {failure} (loading it again)")
        return reasons

    # -- loading -------------------------------------------------------------------------------

    async def load_all(self) -> None:
        """Load every model in parallel worker threads; a failure marks that model, not the server."""
        await asyncio.gather(*(self._load_slot(slot) for slot in self._slots.values()))

    async def add(self, spec: ModelSpec) -> Slot:
        """Load a model at run time; returns its slot, ``ready`` or ``failed`` with the reason."""
        self._claim(spec)
        slot = Slot(spec, origin="runtime")
        self._slots[spec.id] = slot
        self.changes += 1
        await self._load_slot(slot)
        return slot

    async def remove(self, model_id: str, timeout_s: float = 300.0) -> None:
        """Unload a model once the requests it is serving have finished (new ones are refused)."""
        slot = self._slots.get(model_id)
        if slot is None:
            raise ModelNotFound(f"the model {model_id!r} does not exist", param="model")
        if slot.loaded is not None and slot.state == "loading":
            await slot.loaded.wait()
        slot.state = "draining"
        if slot.in_flight:
            slot.idle = slot.idle or asyncio.Event()
            if slot.in_flight:
                slot.idle.clear()
                await asyncio.wait_for(slot.idle.wait(), timeout_s)
        await asyncio.to_thread(self._close_engine, slot)
        for name in (slot.spec.id, *slot.spec.aliases):
            self._names.pop(name, None)
        self._slots.pop(model_id, None)
        self.changes += 1

    async def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload the models whose keep_alive has passed with nothing in flight; their ids."""
        now = time.monotonic() if now is None else now
        done = []
        for slot in list(self._slots.values()):
            keep = slot.keep_alive()
            if keep is None or slot.state != "ready" or slot.in_flight or now - slot.last_used < keep:
                continue
            slot.state = "unloaded"
            await asyncio.to_thread(self._close_engine, slot)
            log.info("model %s unloaded after %.0fs idle (keep_alive)", slot.spec.id, keep)
            done.append(slot.spec.id)
        return done

    async def _reload(self, slot: Slot) -> None:
        if slot.state == "unloaded":
            await self._load_slot(slot)
        elif slot.loaded is not None:
            await slot.loaded.wait()

    async def _load_slot(self, slot: Slot) -> None:
        slot.loaded = asyncio.Event()
        slot.idle = slot.idle or asyncio.Event()
        slot.state = "loading"
        try:
            await asyncio.to_thread(self._load, slot)
        finally:
            slot.loaded.set()

    def _load(self, slot: Slot) -> None:
        started = time.perf_counter()
        try:
            engine = engine_class(slot.spec)(slot.spec, self.data_dir)
            engine.load()
        except Exception as exc:
            slot.state, slot.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("model %s failed to load", slot.spec.id)
            return
        slot.engine, slot.state, slot.error = engine, "ready", None
        slot.load_seconds = time.perf_counter() - started
        slot.last_used = time.monotonic()
        log.info("model %s ready in %.2fs", slot.spec.id, slot.load_seconds)

    @staticmethod
    def _close_engine(slot: Slot) -> None:
        engine, slot.engine = slot.engine, None
        if engine is not None:
            engine.close()
            del engine
            _return_memory()

    def close(self) -> None:
        for slot in self._slots.values():
            if slot.engine is not None:
                slot.engine.close()


def _unavailable(slot: Slot) -> str:
    if slot.state == "failed":
        return f"failed to load: {slot.error}"
    if slot.state == "draining":
        return "is being unloaded"
    return "is still loading"


def _return_memory() -> None:
    """Give freed heap back to the OS (glibc keeps it otherwise), so an unload shows in RSS."""
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        return
