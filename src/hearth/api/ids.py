"""Response ids and timestamps, as the families print them."""

from __future__ import annotations

import time
import uuid


def new_id(prefix: str, sep: str = "-") -> str:
    return f"{prefix}{sep}{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())
