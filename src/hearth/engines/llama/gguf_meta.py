"""GGUF headers read without loading weights: metadata, parameter count, KV-cache size.

``hearth doctor`` uses this to tell what fits before anything is loaded; it reads only the
header and tensor infos, never the tensor data (a GGUF shipped as chunk files reads as one).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
GGUF_STRING, GGUF_ARRAY = 8, 9


class _Chain:
    """Reads a sequence of files as one stream (a GGUF shipped as chunk files)."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = iter(paths)
        self._file: BinaryIO | None = None

    def __enter__(self) -> _Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            if self._file is None:
                path = next(self._paths, None)
                if path is None:
                    raise EOFError("truncated file")
                self._file = path.open("rb")
            chunk = self._file.read(n - len(out))
            if not chunk:
                self._file.close()
                self._file = None
            out += chunk
        return out


@dataclass
class GgufSummary:
    metadata: dict[str, Any]
    parameters: int
    tensors: int


def read_gguf(paths: list[Path]) -> GgufSummary:
    """Metadata and parameter count from a GGUF header (the tensor data is never read)."""
    with _Chain(paths) as f:

        def unpack(fmt: str) -> Any:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(unpack("<Q")).decode("utf-8", errors="replace")

        def value(kind: int) -> Any:
            if kind in GGUF_SCALARS:
                return unpack(GGUF_SCALARS[kind])
            if kind == GGUF_STRING:
                return string()
            if kind == GGUF_ARRAY:
                item_kind, count = unpack("<I"), unpack("<Q")
                if item_kind in GGUF_SCALARS:  # skip big arrays (token scores) without decoding them
                    f.read(struct.calcsize(GGUF_SCALARS[item_kind]) * count)
                    return f"<array of {count}>"
                items = [value(item_kind) for _ in range(count)]
                return f"<array of {count}>" if count > 16 else items
            raise ValueError(f"unknown GGUF value type {kind}")

        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        version = unpack("<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        n_tensors, n_kv = unpack("<Q"), unpack("<Q")
        metadata = {}
        for _ in range(n_kv):
            name = string()
            metadata[name] = value(unpack("<I"))
        parameters = 0
        for _ in range(n_tensors):
            string()
            dims = [unpack("<Q") for _ in range(unpack("<I"))]
            unpack("<I")  # ggml type
            unpack("<Q")  # offset
            count = 1
            for d in dims:
                count *= d
            parameters += count
    return GgufSummary(metadata, parameters, n_tensors)


def kv_cache_bytes(meta: dict[str, Any], context: int) -> int | None:
    arch = meta.get("general.architecture")
    try:
        layers = int(meta[f"{arch}.block_count"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
        embd = int(meta[f"{arch}.embedding_length"])
        key_len = int(meta.get(f"{arch}.attention.key_length", embd // heads))
        value_len = int(meta.get(f"{arch}.attention.value_length", embd // heads))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return layers * kv_heads * (key_len + value_len) * 2 * context  # f16 keys and values
