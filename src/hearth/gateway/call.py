"""One API request as the gateway sees it: who called, which model served it, what it used.

A ``Call`` is opened for every API request (``Gateway.open_call``) and closed exactly once
(``Gateway.close_call``), when the response has been sent or the client has gone; closing writes
its one ledger row. Its three parts are written by the gateway alone, each at one stage:

- ``identity``: who is calling, through which family and route; set when the call opens and
  when it is authorized.
- ``resolution``: which model serves it; set by the resolver.
- ``metering``: what it used and how it went; counted as the response is produced.

The API layer only reads a call: the request id, the model that served it and the caller's
rate-limit numbers for its headers, and the usage and timings it renders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hearth.errors import RateLimitState
from hearth.inference.events import Usage
from hearth.inference.types import Family
from hearth.store.usage_event import UsageEvent

if TYPE_CHECKING:
    from hearth.engines.registry import ModelEntry
    from hearth.gateway.limits import Admission
    from hearth.store.keys import ApiKeyView


@dataclass
class Identity:
    request_id: str
    family: Family
    route: str  # "POST /v1/chat/completions": the route's template once it has matched
    dedupe_key: str | None = None  # the load balancer's id for the client request (HA)
    key: ApiKeyView | None = None
    admission: Admission | None = None  # what the call holds under its key's limits
    authorized: bool = False
    # A read of the server's own state (the model list, the key's usage): authenticated, but
    # never counted against the key's limits, and no usage row.
    reads_state: bool = False
    batch_id: str | None = None  # a line of a batch job: the batch, and the line's custom_id
    custom_id: str | None = None


@dataclass
class Resolution:
    # As asked until it resolves, then the public id (a route's alias, or the model's).
    model: str | None = None
    resolved: bool = False  # ``model`` is a configured id or route (safe as a metric label)
    variant: str | None = None  # the id of the model that really served it
    tried: str | None = None  # the id of the model last tried (a fallback follows its failure)
    entry: ModelEntry | None = None  # the model it holds while in flight
    shadow: str | None = None  # a shadow route's candidate model, mirrored once this call ends well
    shadow_of: str | None = None  # a shadow call: the live request it mirrors


@dataclass
class Metering:
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_point: int = 0  # prompt tokens up to the caller's cache breakpoint (Anthropic's cache_control)
    cache_write_tokens: int = 0  # of those, the ones computed (not read from the cache)
    cache_ttl_s: float = 300.0
    images: int = 0
    audio_seconds: float = 0.0  # speech to text: the file's length; text to speech: the audio made
    characters: int = 0  # text to speech: the input's length
    load_seconds: float = 0.0  # time spent loading the model for this call (keep_alive reloads)
    first_token_at: float | None = None
    agreement: float | None = None  # a shadow call: how far its answer agreed with the live one
    exact_match: bool | None = None
    error_label: str | None = None  # a stream that failed after its 200 was sent: why
    failed_status: int | None = None  # ... and the status it would have had
    journal_mark: str | None = None  # the ledger journal's mark of a stream that began to answer

    def begin_again(self) -> None:
        """Another model takes the request over (a fallback): what the failed try counted goes."""
        self.prompt_tokens = self.completion_tokens = self.cached_tokens = self.cache_write_tokens = 0
        self.cache_point = 0
        self.first_token_at, self.error_label, self.failed_status = None, None, None


@dataclass
class Call:
    identity: Identity
    resolution: Resolution = field(default_factory=Resolution)
    metering: Metering = field(default_factory=Metering)
    started: float = field(default_factory=time.perf_counter)
    closed: bool = False
    handed_off: bool = False  # its work (and usage row) continues in another call: Gateway.hand_off

    @property
    def request_id(self) -> str:
        return self.identity.request_id

    @property
    def key_id(self) -> int | None:
        key = self.identity.key
        return None if key is None else key.id

    @property
    def rate_limits(self) -> RateLimitState | None:
        admission = self.identity.admission
        return None if admission is None else admission.state

    @property
    def variant(self) -> str | None:
        return self.resolution.variant

    @property
    def usage(self) -> Usage:
        m = self.metering
        return Usage(
            m.prompt_tokens, m.completion_tokens, m.cached_tokens, m.cache_write_tokens, m.cache_ttl_s
        )

    @property
    def total_tokens(self) -> int:
        return self.metering.prompt_tokens + self.metering.completion_tokens

    def usage_event(self, status: int, error: str | None) -> UsageEvent:
        """The call's usage row, as it stands."""
        who, served, meter = self.identity, self.resolution, self.metering
        return UsageEvent(
            request_id=who.request_id,
            model=served.model or "-",
            route=who.route,
            family=who.family,
            variant=served.variant,
            shadow_of=served.shadow_of,
            agreement=meter.agreement,
            exact_match=meter.exact_match,
            dedupe_key=who.dedupe_key,
            key_id=self.key_id,
            key_name=None if who.key is None else who.key.name,
            prompt_tokens=meter.prompt_tokens,
            completion_tokens=meter.completion_tokens,
            cached_tokens=meter.cached_tokens,
            images=meter.images,
            audio_seconds=round(meter.audio_seconds, 3),
            characters=meter.characters,
            batch_id=who.batch_id,
            custom_id=who.custom_id,
            latency_ms=self.latency_ms(),
            ttft_ms=self.ttft_ms,
            status_code=status,
            error_type=error,
            stream=meter.stream,
            mark_id=meter.journal_mark,
        )

    def mark_first_token(self) -> None:
        if self.metering.first_token_at is None:
            self.metering.first_token_at = time.perf_counter()

    @property
    def ttft_ms(self) -> float | None:
        first = self.metering.first_token_at
        return None if first is None else (first - self.started) * 1000

    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
