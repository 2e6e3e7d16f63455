"""Process-wide llama.cpp plumbing: backend init, log routing, model metadata, CPU topology.

llama.cpp logs through one global callback. We route it into :mod:`logging` (logger
``hearth.llama.native``; llama.cpp's INFO chatter goes to DEBUG) instead of letting
llama-cpp-python print everything to stderr, and we can capture the lines printed while a
context is created to read the KV cache size that llama.cpp actually allocated.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import llama_cpp

from hearth.engines.llama.threadpool import PoolLease

log = logging.getLogger("hearth.llama.native")

# ggml_log_level (ggml.h) -> logging level. INFO is demoted: a load prints hundreds of lines.
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_CONT = 5
# Warnings llama.cpp prints for harmless quirks of well-known model files (SmolLM2's "</s>"
# token type): kept at DEBUG so a normal start shows no false alarm.
# Logged at debug: a stopped step of batch-class work (step_abort.py) rolls its positions back.
_BENIGN = (
    "control-looking token",
    "removing memory module entries",
    "compute_async failed with error 1",  # GGML_STATUS_ABORTED
    "compute status: 1",
    "failed to decode, ret = 2",
)

_lock = threading.Lock()
_load_lock = threading.Lock()  # one load at a time, so captured lines belong to it
_backend_ready = False
_captures: list[list[str]] = []
_partial: list[str] = []
_partial_level = logging.DEBUG


def _on_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    global _partial_level
    if level != _CONT:
        _partial_level = _LEVELS.get(level, logging.DEBUG)
    _partial.append(text.decode("utf-8", errors="replace"))
    if not _partial[-1].endswith("\n"):
        return  # llama.cpp builds some lines from several calls
    line = "".join(_partial).rstrip("\n")
    _partial.clear()
    for sink in _captures:
        sink.append(line)
    level = logging.DEBUG if any(b in line for b in _BENIGN) else _partial_level
    log.log(level, "%s", line)


_on_log_c = llama_cpp.llama_log_callback(_on_log)  # module global: C keeps only a raw pointer


def ensure_backend() -> None:
    """Initialise the ggml backend once and take over llama.cpp's log callback."""
    global _backend_ready
    with _lock:
        if _backend_ready:
            return
        llama_cpp.llama_log_set(_on_log_c, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True


def free_loaded(ctx: Any, pool: PoolLease | None, model: Any) -> None:
    """Free what a load made, in the order llama.cpp needs: the context, its pool share, the model."""
    if ctx:
        llama_cpp.llama_free(ctx)
    if pool is not None:
        pool.release()
    if model:
        llama_cpp.llama_model_free(model)


def system_info() -> str:
    """llama.cpp's own summary of the CPU features this build uses."""
    info: bytes = llama_cpp.llama_print_system_info()
    return info.decode("utf-8", errors="replace").strip(" |")


def amx_compiled() -> bool:
    """Whether this llama.cpp build carries its AMX kernels (x86 ``-march=native`` on Sapphire Rapids).

    Those kernels segfault on the first decode of K-quant models on some Sapphire Rapids machines
    (ggml-org/llama.cpp#20824; seen on ours), and they only run through llama.cpp's "extra" weight
    buffers, which a model can be loaded without.
    """
    return "AMX_INT8 = 1" in system_info()


def openmp_compiled() -> bool:
    """Whether this llama.cpp build parallelises with OpenMP (``GGML_OPENMP``, CMake's default)."""
    return "OPENMP = 1" in system_info()


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    """Collect llama.cpp log lines printed inside the block; such blocks run one at a time."""
    lines: list[str] = []
    with _load_lock:
        _captures.append(lines)
        try:
            yield lines
        finally:
            _captures.remove(lines)


_KV_SIZE = re.compile(r"llama_kv_cache: size =\s*([0-9.]+) MiB")


def kv_cache_bytes(lines: list[str]) -> int | None:
    """Sum of the KV buffers llama.cpp reported (one line per cache: full-attention and SWA)."""
    sizes = [float(m.group(1)) for line in lines if (m := _KV_SIZE.search(line))]
    return round(sum(sizes) * 1024 * 1024) if sizes else None


def meta_str(model: Any, key: str) -> str | None:
    """A GGUF metadata value as a string (arrays are not exposed by llama.cpp)."""
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, size)
        if n < 0:
            return None
        if n < size:
            return buf.value.decode("utf-8", errors="replace")
        size = n + 1


# enum llama_ftype (llama.h) -> the usual quantization names.
FTYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}  # fmt: skip


def quantization_name(model: Any) -> str | None:
    raw = meta_str(model, "general.file_type")
    if raw is None or not raw.strip().isdigit():
        return None
    ftype = int(raw)
    return FTYPE_NAMES.get(ftype, f"ftype-{ftype}")
