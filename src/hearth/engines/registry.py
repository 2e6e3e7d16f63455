"""Which engine class serves which backend, and the set of models with their life cycle.

Engine classes are imported lazily so that a server configured with only GGUF models never
imports torch, and tests with fake engines import neither.

A model's entry goes ``pending -> loading -> ready`` (or ``failed``, which leaves the others
serving). Models from the config load at start-up and decide readiness; models added at run
time (``add``) do not. ``remove`` drains: the entry refuses new requests, waits for the ones it
is serving (``acquire``/``release`` count them), then closes the engine. A model with
``keep_alive_s`` is unloaded after that long without a request (``unloaded``) and loads again
on the next one, as Ollama's ``keep_alive`` does; ``unload`` lets it go at once (``keep_alive: 0``).
A model with ``load: first-use`` starts ``unloaded`` and loads on its first request.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from hearth.config import ModelKind, ModelSpec
from hearth.engines import worker
from hearth.engines.base import Engine, EngineActivity
from hearth.engines.context import EngineContext
from hearth.errors import InvalidRequest, ModelNotFound, NotReady, Subject

log = logging.getLogger("hearth.engines")

_BACKENDS: dict[tuple[str, ModelKind], str] = {
    ("llama.cpp", ModelKind.CHAT): "hearth.engines.llama:LlamaEngine",
    ("llama.cpp", ModelKind.EMBEDDING): "hearth.engines.llama.embedding:LlamaEmbeddingEngine",
    ("sentence-transformers", ModelKind.EMBEDDING): "hearth.engines.embeddings:SentenceTransformerEngine",
    ("sentence-transformers", ModelKind.RERANK): "hearth.engines.cross_encoder:CrossEncoderEngine",
    ("fake", ModelKind.RERANK): "hearth.engines.fake:FakeRerankEngine",
    ("faster-whisper", ModelKind.SPEECH_TO_TEXT): "hearth.engines.speech.whisper:WhisperEngine",
    ("piper", ModelKind.TEXT_TO_SPEECH): "hearth.engines.speech.piper:PiperEngine",
    ("efficientnet", ModelKind.IMAGE_CLASSIFICATION): "hearth.engines.vision:EfficientNetEngine",
    ("fake", ModelKind.CHAT): "hearth.engines.fake:FakeChatEngine",
    ("fake", ModelKind.EMBEDDING): "hearth.engines.fake:FakeEmbeddingEngine",
    ("fake", ModelKind.IMAGE_CLASSIFICATION): "hearth.engines.fake:FakeClassifierEngine",
    ("openai", ModelKind.CHAT): "hearth.engines.upstream:UpstreamChatEngine",
    ("anthropic", ModelKind.CHAT): "hearth.engines.upstream:UpstreamChatEngine",
    ("openai", ModelKind.EMBEDDING): "hearth.engines.upstream:UpstreamEmbeddingEngine",
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
    # llama.cpp engines never run in the worker, and importing theirs takes 0.3 s: look at the
    # others first, and start the worker on the first model found, not after the loop.
    for spec in sorted(specs, key=lambda s: s.backend == "llama.cpp"):
        try:
            model = engine_class(spec).worker_model
        except (ValueError, ImportError):
            continue  # the registry reports it when it loads the model
        if model is not None:
            worker.prestart(model, mode)


@dataclass
class ModelEntry:
    """One model of the registry and its life cycle: loaded or not, and the requests it serves."""

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
    def __init__(self, specs: list[ModelSpec], context: EngineContext) -> None:
        self.context = context
        self._entries: dict[str, ModelEntry] = {}
        self._names: dict[str, str] = {}
        for spec in specs:
            self._claim(spec)
            self._entries[spec.id] = ModelEntry(spec)

    def _claim(self, spec: ModelSpec) -> None:
        for name in (spec.id, *spec.aliases):
            if name in self._names:
                raise InvalidRequest(f"model name {name!r} is already in use", param="id")
        for name in (spec.id, *spec.aliases):
            self._names[name] = spec.id

    @property
    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def names(self) -> dict[str, str]:
        """Every model name (id or alias) and the id it stands for."""
        return dict(self._names)

    def lookup(self, name: str) -> ModelEntry | None:
        """The model an id or alias names, or None."""
        model_id = self._names.get(name)
        return None if model_id is None else self._entries[model_id]

    def entry(self, model_id: str) -> ModelEntry:
        return self._entries[model_id]

    def get(self, name: str, cls: type[E]) -> E:
        """The loaded engine for ``name`` (id or alias), checked to serve ``cls``'s capability."""
        entry = self.lookup(name)
        if entry is None:
            raise ModelNotFound(name)
        if entry.engine is None or entry.state == "draining":
            raise NotReady(f"the model {entry.spec.id!r} {_unavailable(entry)}", retry_after=2)
        if not isinstance(entry.engine, cls):
            raise InvalidRequest(
                f"the model {entry.spec.id!r} is a {entry.spec.kind.value} model and cannot serve this route",
                subject=Subject.MODEL,
                reason="model_not_supported",
            )
        return entry.engine

    async def acquire(self, model_id: str, cls: type[E]) -> tuple[ModelEntry, E]:
        """The engine of ``model_id``, loading it first if keep_alive had unloaded it, counted in flight."""
        entry = self._entries[model_id]
        await self.load(entry, first=False)  # a first load (start-up) answers 503 until it ends
        engine = self.get(model_id, cls)
        entry.in_flight += 1
        entry.last_used = time.monotonic()
        if entry.idle is not None:
            entry.idle.clear()
        return entry, engine

    def release(self, entry: ModelEntry) -> None:
        entry.in_flight = max(0, entry.in_flight - 1)
        entry.last_used = time.monotonic()
        if entry.in_flight == 0 and entry.idle is not None:
            entry.idle.set()

    def first_of_kind(self, kind: ModelKind) -> ModelSpec | None:
        return next((e.spec for e in self._entries.values() if e.spec.kind == kind), None)

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Each loaded engine's own status (an upstream's endpoints), for operators and metrics."""
        return {e.spec.id: e.engine.status() for e in self._entries.values() if e.engine is not None}

    def activities(self) -> dict[str, EngineActivity]:
        return {e.spec.id: e.engine.activity() for e in self._entries.values() if e.engine is not None}

    def not_ready_reasons(self) -> list[str]:
        """Why the server is not ready: a config model not (yet) serving. Run-time models don't count."""
        reasons = []
        for entry in self._entries.values():
            if entry.origin != "config":
                continue
            if entry.state not in ("ready", "unloaded"):
                reasons.append(
                    f"{entry.spec.id}: {entry.state}" + (f" ({entry.error})" if entry.error else "")
                )
            elif (failure := entry.engine.failure() if entry.engine is not None else None) is not None:
                reasons.append(f"{entry.spec.id}: {failure} (loading it again)")
        return reasons

    # -- loading -------------------------------------------------------------------------------

    async def load_all(self) -> None:
        """Load every model in parallel worker threads; a failure marks that model, not the server."""
        for entry in self._entries.values():
            if entry.spec.load == "first-use" and entry.state == "pending":
                entry.state = "unloaded"  # loads on its first request (``load``)
        starting = [e for e in self._entries.values() if e.state == "pending"]
        await asyncio.gather(*(self._load_entry(entry) for entry in starting))

    async def load(self, entry: ModelEntry, *, first: bool = True) -> float:
        """Have the model loaded: load it again if keep_alive (or an unload) let it go, or wait
        for a load under way (with ``first``, its first load too). Returns the seconds this call
        waited for a load (0 when the model was loaded)."""
        if entry.state == "unloaded":
            started = time.perf_counter()
            await self._load_entry(entry)
            return time.perf_counter() - started
        # Requests wait for a reload, or a first load on first use; a start-up load answers 503.
        waits = first or entry.load_seconds is not None or entry.spec.load == "first-use"
        if entry.state == "loading" and entry.loaded is not None and waits:
            started = time.perf_counter()
            await entry.loaded.wait()
            return time.perf_counter() - started
        return 0.0

    async def unload(self, entry: ModelEntry) -> None:
        """Let the model go now (Ollama's ``keep_alive: 0``); one serving requests goes once they end."""
        if entry.state != "ready":
            return
        if entry.in_flight:
            entry.keep_alive_s = 0  # the idle sweep takes it once its requests have finished
            return
        await self._unload(entry)

    async def add(self, spec: ModelSpec) -> ModelEntry:
        """Load a model at run time; returns its entry, ``ready`` or ``failed`` with the reason."""
        self._claim(spec)
        entry = ModelEntry(spec, origin="runtime")
        self._entries[spec.id] = entry
        await self._load_entry(entry)
        return entry

    async def remove(self, model_id: str, timeout_s: float = 300.0) -> None:
        """Unload a model once the requests it is serving have finished (new ones are refused)."""
        entry = self._entries.get(model_id)
        if entry is None:
            raise ModelNotFound(model_id)
        if entry.loaded is not None and entry.state == "loading":
            await entry.loaded.wait()
        entry.state = "draining"
        if entry.in_flight:
            entry.idle = entry.idle or asyncio.Event()
            if entry.in_flight:
                entry.idle.clear()
                await asyncio.wait_for(entry.idle.wait(), timeout_s)
        await self._close(entry)
        for name in (entry.spec.id, *entry.spec.aliases):
            self._names.pop(name, None)
        self._entries.pop(model_id, None)

    async def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload the models whose keep_alive has passed with nothing in flight; their ids."""
        now = time.monotonic() if now is None else now
        done = []
        for entry in list(self._entries.values()):
            keep = entry.keep_alive()
            if keep is None or entry.state != "ready" or entry.in_flight or now - entry.last_used < keep:
                continue
            await self._unload(entry)
            log.info("model %s unloaded after %.0fs idle (keep_alive)", entry.spec.id, keep)
            done.append(entry.spec.id)
        return done

    async def _unload(self, entry: ModelEntry) -> None:
        entry.state = "unloaded"
        entry.keep_alive_s = None  # the next load starts from the model's own keep_alive
        await self._close(entry)

    async def _close(self, entry: ModelEntry) -> None:
        if entry.engine is not None:
            await self._stop(entry.engine, entry.spec.id)
        await asyncio.to_thread(self._close_engine, entry)

    @staticmethod
    async def _stop(engine: Engine, model_id: str) -> None:
        try:
            await engine.stop()
        except Exception:
            log.exception("model %s did not stop cleanly", model_id)

    async def _load_entry(self, entry: ModelEntry) -> None:
        entry.loaded = asyncio.Event()
        entry.idle = entry.idle or asyncio.Event()
        entry.state = "loading"
        try:
            await asyncio.to_thread(self._load, entry)
            if entry.engine is not None:
                await entry.engine.start()
        except Exception as exc:
            entry.state, entry.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("model %s failed to start", entry.spec.id)
        finally:
            entry.loaded.set()

    def _load(self, entry: ModelEntry) -> None:
        started = time.perf_counter()
        try:
            engine = engine_class(entry.spec)(entry.spec, self.context)
            engine.load()
        except Exception as exc:
            entry.state, entry.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("model %s failed to load", entry.spec.id)
            return
        entry.engine, entry.state, entry.error = engine, "ready", None
        entry.load_seconds = time.perf_counter() - started
        entry.last_used = time.monotonic()
        log.info("model %s ready in %.2fs", entry.spec.id, entry.load_seconds)

    @staticmethod
    def _close_engine(entry: ModelEntry) -> None:
        engine, entry.engine = entry.engine, None
        if engine is not None:
            engine.close()
            del engine
            _return_memory()

    async def stop_all(self) -> None:
        """Stop every engine's background work (shutting down; ``close`` follows)."""
        for entry in list(self._entries.values()):
            if entry.engine is not None:
                await self._stop(entry.engine, entry.spec.id)

    def close(self) -> None:
        for entry in self._entries.values():
            if entry.engine is not None:
                entry.engine.close()


def _unavailable(entry: ModelEntry) -> str:
    if entry.state == "failed":
        return f"failed to load: {entry.error}"
    if entry.state == "draining":
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
