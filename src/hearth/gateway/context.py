"""The per-request record that travels with a request and becomes one ledger row at its end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hearth.gateway.limits import Admission


@dataclass
class RequestContext:
    request_id: str
    route: str
    started: float = field(default_factory=time.perf_counter)
    key_id: int | None = None
    key_name: str | None = None
    model: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    images: int = 0
    first_token_at: float | None = None
    error_type: str | None = None
    failed_status: int | None = None  # a stream that failed after its 200 was sent
    admission: Admission | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token_at is None else (self.first_token_at - self.started) * 1000

    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
