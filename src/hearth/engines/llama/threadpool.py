"""A persistent ggml thread pool for llama.cpp builds without OpenMP (``GGML_OPENMP=OFF``).

Why not OpenMP: ggml's OpenMP build runs every op-to-op barrier as ``#pragma omp barrier``, and
libgomp is one runtime per process, shared with torch. Once torch has run a parallel region on
some other thread (loading EfficientNet or MiniLM does), libgomp manages more threads than there
are CPUs and cuts every barrier's spin to ~100 iterations, so llama.cpp's two threads sleep and
wake on a futex at its barriers: ~550 voluntary context switches per token on 2 cores, against ~2,
and 0.72x the single-stream speed (measured). ggml's own pool spins on its own atomics, immune.

Without OpenMP, though, a context with no pool attached creates and joins a fresh set of threads on
every ``llama_decode``; attaching a pool avoids that, as llama-server does.

One pool for every context in the process (``lease``), not one each: ggml's workers spin at
their barriers, so two pools of two threads on two cores (a chat model decoding while MiniLM
encodes) each wait for threads the other has preempted. Measured with 8 LLM streams and 16
embedding clients: their throughputs summed to 0.44 of each alone with a pool each, and 0.72
with a pool each taking turns, the idle pool still spinning through the other's turn. Contexts
that share a pool take turns on it (a FIFO ``ComputeTurns``), since a pool runs one graph at a
time; a decode step or an embedding batch lasts milliseconds, so no turn is long.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from hearth.engines.compute import ComputeTurns

GGML_MAX_N_THREADS = 512  # ggml.h
CPU_SONAME = "libggml-cpu.so.0"


class _Params(ctypes.Structure):
    """``struct ggml_threadpool_params`` (ggml.h)."""

    _fields_ = [
        ("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


_cpu_lib: Any = None


def _lib() -> Any:
    """The libggml-cpu that libllama loaded, by its soname.

    Not by path: the wheel ships ``libggml-cpu.so`` and ``libggml-cpu.so.0`` as two files, and a
    pool made by a second copy of the library runs that copy's uninitialised kernels (NaN logits).
    ``RTLD_NOLOAD`` returns the loaded copy or fails; it never loads another.
    """
    global _cpu_lib
    if _cpu_lib is None:
        lib = ctypes.CDLL(CPU_SONAME, mode=os.RTLD_NOLOAD)
        lib.ggml_threadpool_params_default.argtypes = [ctypes.c_int]
        lib.ggml_threadpool_params_default.restype = _Params
        lib.ggml_threadpool_new.argtypes = [ctypes.POINTER(_Params)]
        lib.ggml_threadpool_new.restype = ctypes.c_void_p
        lib.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
        lib.ggml_threadpool_free.restype = None
        _cpu_lib = lib
    return _cpu_lib


def _attach_fn() -> Any:
    fn = llama_cpp.llama_cpp._lib.llama_attach_threadpool  # not wrapped by llama-cpp-python
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = None
    return fn


class ThreadPool:
    """``n_threads`` ggml workers (the caller of ``llama_decode`` is one of them)."""

    def __init__(self, n_threads: int, poll: int | None = None) -> None:
        """``poll`` (0-100): how long idle workers spin for the next decode before they sleep.

        ggml's default, 50, spins for about 6.5 M pause instructions (~0.1 s): between one
        decode and the next it keeps a core busy, which is right when llama.cpp has the CPU to
        itself and wrong when another engine takes its turn on the cores in that gap.
        """
        lib = _lib()
        params = lib.ggml_threadpool_params_default(n_threads)
        if poll is not None:
            params.poll = max(0, min(100, poll))
        pool = lib.ggml_threadpool_new(ctypes.byref(params))
        if not pool:
            raise RuntimeError(f"ggml could not create a thread pool of {n_threads} threads")
        self._pool: int | None = int(pool)

    def attach(self, ctx: Any) -> None:
        """Use this pool for every decode of ``ctx``, prompt batches included."""
        _attach_fn()(ctx, self._pool, self._pool)

    def free(self) -> None:
        """Free the pool; detach it (or free its context) first."""
        if self._pool is not None:
            _lib().ggml_threadpool_free(self._pool)
            self._pool = None


@dataclass
class _Shared:
    pool: ThreadPool
    turns: ComputeTurns = field(default_factory=ComputeTurns)
    leases: int = 0


_shared: dict[tuple[int, int | None], _Shared] = {}
_shared_lock = threading.Lock()


class PoolLease:
    """A context's share of the process's pool for its thread count and poll (see module doc)."""

    def __init__(self, n_threads: int, poll: int | None = None) -> None:
        self._key = (n_threads, poll)
        with _shared_lock:
            entry = _shared.get(self._key)
            if entry is None:
                entry = _shared[self._key] = _Shared(ThreadPool(n_threads, poll))
            entry.leases += 1
        self._entry: _Shared | None = entry

    @classmethod
    def for_context(cls, ctx: Any, n_threads: int, options: Mapping[str, Any]) -> PoolLease:
        """A share of the pool for ``n_threads`` (and the model's ``ggml_poll`` option), attached
        to ``ctx``: every llama.cpp context decodes on the process's one pool, taking turns."""
        poll = options.get("ggml_poll")
        lease = cls(n_threads, None if poll is None else int(poll))
        lease.attach(ctx)
        return lease

    def attach(self, ctx: Any) -> None:
        assert self._entry is not None
        self._entry.pool.attach(ctx)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold this around every ``llama_decode``/``llama_encode`` of a context on this pool."""
        assert self._entry is not None
        with self._entry.turns.turn():
            yield

    def release(self) -> None:
        """Give the share back (free the context first); the last lease frees the pool."""
        with _shared_lock:
            entry, self._entry = self._entry, None
            if entry is None:
                return
            entry.leases -= 1
            if entry.leases == 0:
                del _shared[self._key]
                entry.pool.free()


@contextmanager
def no_turn() -> Iterator[None]:
    """The turn of a context without a pool (an OpenMP build): nothing to share."""
    yield
