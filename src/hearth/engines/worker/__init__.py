"""Torch models in a child process of their own, as vLLM runs its engine core apart from its API server.

The image model, and embedding models served by sentence-transformers, run on torch, whose
imports (torch alone ~1.8 s of CPU on a small machine; with transformers and
sentence-transformers ~6 s) and whose Python-side work per batch
hold the GIL. In the server's process they stall the event loop and llama.cpp's scheduler: at
start-up the imports serialise with everything else, and under a mixed load every embedding batch
takes the GIL from the decode loop. One worker process holds every torch model instead; the
server keeps the HTTP work, the batching and the checks, and sends each batch over a socket.

- :class:`ModelHost` is what an engine holds: it runs a model's methods in the worker
  (``mode="process"``, the default) or in this process (``"inline"``, ``HEARTH_TORCH_ENGINES``).
  When the worker dies (a crash, the OOM killer), calls in flight fail with ``EngineFailure`` and
  the next call starts a new worker and loads the model again.
- The worker is started by the first model that loads and stops when the last one unloads.
  It exits when the server's end of the socket closes, so a server killed with ``kill -9``
  leaves no worker behind.

Only this package's ``__main__`` runs in the child; nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import os
import socket

# The engine worker is this package, run by sys.executable (bandit B404).
import subprocess  # nosec B404
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any, Literal

from hearth.errors import EngineFailure

log = logging.getLogger("hearth.engines.worker")

Mode = Literal["process", "inline"]


def resolve(factory: str) -> Any:
    """``"package.module:Name"`` to the object it names."""
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)


class ModelWorker:
    """One child process and the socket to it; calls from any thread, matched to replies by id."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Our own module, a fixed argument list (bandit B603).
        self._proc = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "hearth.engines.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=env,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count()
        self.models: set[str] = set()
        self.prepared: set[str] = set()  # factories whose imports it was asked to start
        self.on_death: list[Callable[[], None]] = []  # run once if it dies, not when closed
        self.dead: str | None = None
        self.pid = self._proc.pid
        threading.Thread(target=self._read_replies, name="model-worker-replies", daemon=True).start()

    def call(self, key: str, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` on the model ``key`` in the worker; blocks until it answers."""
        future: Future[Any] = Future()
        with self._lock:
            if self.dead is not None:
                raise EngineFailure(self.dead)
            call_id = next(self._ids)
            self._pending[call_id] = future
        try:
            with self._send_lock:
                self._conn.send(("call", call_id, key, method, args))
        except (OSError, ValueError) as exc:
            self._die(f"the model worker process could not be reached: {exc}")
        return future.result()

    def prepare(self, factory: str) -> None:
        """Ask the worker to import what ``factory``'s model needs; nothing waits for it."""
        try:
            with self._send_lock:
                self._conn.send(("prepare", factory))
        except (OSError, ValueError) as exc:
            self._die(f"the model worker process could not be reached: {exc}")

    def _read_replies(self) -> None:
        while True:
            try:
                _, call_id, ok, value = self._conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._pending.pop(call_id, None)
            if future is None:
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(EngineFailure(value))
        try:
            code: int | None = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited (code {code})"
        self._die(f"the model worker process (pid {self.pid}) {how}")

    def _die(self, reason: str) -> None:
        with self._lock:
            died, self.dead = self.dead is None, self.dead or reason
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(EngineFailure(reason))
        if died:
            log.error("%s; loading its models (%s) in a new one", reason, ", ".join(sorted(self.models)))
            for callback in self.on_death:
                callback()

    def close(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self.dead = self.dead or "the model worker process was stopped"
        try:
            with self._send_lock:
                self._conn.send(("exit",))
        except (OSError, ValueError):
            pass
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._conn.close()


_shared: ModelWorker | None = None
_shared_lock = threading.Lock()


def _live_worker() -> ModelWorker:
    """The shared worker, started if there is none or it died; call with ``_shared_lock`` held."""
    global _shared
    if _shared is None or _shared.dead is not None:
        _shared = ModelWorker()
        log.info("model worker process started (pid %d)", _shared.pid)
    return _shared


def _worker_for(key: str) -> ModelWorker:
    """The live shared worker; ``key`` is counted as one of its models."""
    with _shared_lock:
        worker = _live_worker()
        worker.models.add(key)
        return worker


def prestart(factory: str, mode: Mode) -> None:
    """Start the shared worker now and have it import what ``factory``'s model needs (its ``prepare()``).

    ``hearth serve`` calls this before it imports its own app, so that torch's imports (the
    longest step of a start) run beside the server's instead of after them. The models load
    later, as the registry asks; an import that fails here fails again, with its reason, there.
    """
    if mode != "process":
        return
    with _shared_lock:
        worker = _live_worker()
        if factory not in worker.prepared:
            worker.prepared.add(factory)
            worker.prepare(factory)


def _release(worker: ModelWorker, key: str) -> None:
    global _shared
    with _shared_lock:
        worker.models.discard(key)
        if worker.models:
            return
        if _shared is worker:
            _shared = None
    worker.close()  # the last model is gone: the process and all its memory go back


class ModelHost:
    """A model object built by ``factory(*args)`` and run in the worker process or in this one.

    ``describe`` is what the model's ``describe()`` returned when it loaded (sizes, limits).
    """

    def __init__(self, key: str, factory: str, *args: Any, mode: Mode) -> None:
        self.key, self._factory, self._args = key, factory, args
        self.mode: Mode = mode
        self._local: Any = None
        self._worker: ModelWorker | None = None
        self._restart_lock = threading.Lock()
        self._closed = self._released = False
        self.describe: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        if self.mode == "inline":
            self._local = resolve(self._factory)(*self._args)
            return dict(self._local.describe())
        worker = _worker_for(self.key)
        try:
            described = worker.call(self.key, "__load__", self._factory, self._args)
        except BaseException:
            _release(worker, self.key)
            raise
        self._worker = worker
        worker.on_death.append(lambda: self._recover_soon(worker))
        return dict(described)

    def _recover_soon(self, dead: ModelWorker) -> None:
        """The worker died: load the model in a new one now, not at the next request, so that
        ``/ready`` (which reports the failure meanwhile) comes back by itself."""

        def recover() -> None:
            try:
                self._restart(dead)
            except Exception:
                log.exception("model %s could not be loaded again; the next request retries", self.key)

        threading.Thread(target=recover, name=f"reload-{self.key}", daemon=True).start()

    def call(self, method: str, *args: Any) -> Any:
        if self._local is not None:
            return getattr(self._local, method)(*args)
        worker = self._worker
        if worker is None:
            raise EngineFailure(f"model {self.key} is not loaded")
        if worker.dead is not None:
            worker = self._restart(worker)
        return worker.call(self.key, method, *args)

    def _restart(self, dead: ModelWorker) -> ModelWorker:
        with self._restart_lock:
            if self._closed:
                raise EngineFailure(f"model {self.key} is not loaded")
            if self._worker is dead:
                self._released = True
                _release(dead, self.key)
                self._load()
                self._released = False
                log.info("model %s loaded again in a new worker process", self.key)
            worker = self._worker
            if worker is None or worker.dead is not None:
                raise EngineFailure(f"model {self.key} could not be loaded again")
            return worker

    @property
    def failure(self) -> str | None:
        """Why the model can't answer now (its worker died and it is loading again), or None."""
        worker = self._worker
        return worker.dead if worker is not None and worker.dead is not None else None

    def close(self) -> None:
        with self._restart_lock:
            self._closed = True
            worker, self._worker, self._local = self._worker, None, None
            released = self._released
        if worker is None or released:
            return
        if worker.dead is None:
            with contextlib.suppress(EngineFailure):
                worker.call(self.key, "__unload__")
        _release(worker, self.key)
