"""One API request as the gateway sees it: who called, through which family, and what it used.

A ``Call`` is opened for every API request and closed exactly once, when the response has been
sent (or the client has gone); closing writes its one ledger row. Only the gateway writes to
it. The API layer reads what it renders: the request id and the caller's rate-limit numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hearth.errors import RateLimitState
from hearth.inference.events import Usage
from hearth.inference.types import Family

if TYPE_CHECKING:
    from hearth.engines.registry import Slot
    from hearth.gateway.limits import Admission
    from hearth.store.keys import ApiKeyView


@dataclass
class Call:
    request_id: str
    family: Family
    route: str
    started: float = field(default_factory=time.perf_counter)
    key: ApiKeyView | None = None
    admission: Admission | None = None
    authorized: bool = False
    # What the usage row will say; written by the gateway as the request goes.
    model: str | None = (
        None  # as asked until it resolves, then the public id (a route's alias, or the model's)
    )
    resolved: bool = False  # ``model`` is a configured id or route (safe as a metric label)
    variant: str | None = None  # the id of the model that really served it
    slot: Slot | None = None  # the model slot it holds while in flight
    shadow: str | None = None  # a shadow route's candidate model, mirrored once this call ends well
    shadow_of: str | None = None  # a shadow call: the live request it mirrors
    agreement: float | None = None
    exact_match: bool | None = None
    dedupe_key: str | None = None  # the load balancer's id for the client request (HA)
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    images: int = 0
    first_token_at: float | None = None
    error_kind: str | None = None
    failed_status: int | None = None  # a stream that failed after its 200 was sent
    closed: bool = False
    handed_off: bool = False  # its work (and usage row) continues in another call: Gateway.hand_off

    @property
    def key_id(self) -> int | None:
        return None if self.key is None else self.key.id

    @property
    def rate_limits(self) -> RateLimitState | None:
        return None if self.admission is None else self.admission.state

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens, self.cached_tokens)

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
