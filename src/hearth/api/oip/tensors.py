"""Tensor bytes on the wire: the body split of the binary tensor data extension, and BYTES packing.

With the extension (Triton's, which ``tritonclient`` uses by default) a body is a JSON header of
``Inference-Header-Content-Length`` bytes followed by each binary tensor's bytes, in the order
the header lists them. A binary BYTES tensor is its elements, each a 4-byte little-endian length
then the bytes; a numeric tensor is its little-endian elements in row-major order.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from hearth.errors import InvalidRequest, PayloadTooLarge

HEADER_LENGTH = "Inference-Header-Content-Length"
_WBITS = {"gzip": 31, "deflate": 15}  # zlib's window bits for a gzip member and a zlib stream


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """A request body sent with ``Content-Encoding`` (tritonclient's request compression)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise InvalidRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or deflate")
    inflater = zlib.decompressobj(wbits)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"the {encoding} request body is corrupt: {exc}") from exc
    if len(plain) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"request body too large once decompressed: the limit is {limit} bytes")
    if not inflater.eof:
        raise InvalidRequest(f"the {encoding} request body is truncated")
    return plain


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary section (empty without the extension)."""
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise InvalidRequest(
            f"{HEADER_LENGTH} must be a byte count no larger than the body ({len(body)} bytes)",
            param=HEADER_LENGTH,
        )
    size = int(header_length)
    return body[:size], body[size:]


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def flatten(data: list[Any]) -> list[Any]:
    """Row-major elements of flat or nested JSON tensor data."""
    if not any(isinstance(x, list) for x in data):
        return data
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], stack)
        if item is stack:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


def unpack_bytes(raw: bytes, where: str) -> list[bytes]:
    """The elements of a binary BYTES tensor."""
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidRequest(f"{where}: the binary BYTES data ends inside an element's length")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidRequest(f"{where}: a binary BYTES element runs past the end of its data")
        items.append(raw[offset : offset + size])
        offset += size
    return items


def pack_bytes(items: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def pack_fp32(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()
