"""Response ids and timestamps, as the families print them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable


def new_id(prefix: str, sep: str = "-") -> str:
    return f"{prefix}{sep}{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def client_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k == b"x-request-id"), None)


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """A request's id: the client's ``x-request-id`` (at most 64 characters), else a new one."""
    return (client_request_id(headers) or f"req_{uuid.uuid4().hex}")[:64]
