"""One request's usage, as the ledger writes it: a row of ``usage_records``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from hearth.store.tables import utcnow


@dataclass(slots=True)
class UsageEvent:
    """What one request used. ``total_tokens=None`` means prompt + completion."""

    request_id: str
    model: str
    route: str
    family: str = "openai"
    variant: str | None = None
    shadow_of: str | None = None
    agreement: float | None = None
    exact_match: bool | None = None
    # Unique when set: the id a load balancer gives one client request, retries included.
    dedupe_key: str | None = None
    key_id: int | None = None
    key_name: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    cached_tokens: int = 0
    images: int = 0
    audio_seconds: float = 0.0  # heard (speech to text) or spoken (text to speech)
    characters: int = 0  # text to speech: the input read aloud
    batch_id: str | None = None  # a batch job's line: its batch and its custom_id
    custom_id: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status_code: int = 200
    error_type: str | None = None
    stream: bool = False
    created_at: datetime = field(default_factory=utcnow)
    # Not a column: the journal mark of the stream this row finishes (LedgerWriter.mark).
    mark_id: str | None = None

    def as_row(self) -> dict[str, Any]:
        # Shallow: ``asdict`` deep-copies every value (the datetime too), once per request.
        row = {f.name: getattr(self, f.name) for f in _EVENT_FIELDS}
        if row["total_tokens"] is None:
            row["total_tokens"] = event_tokens(self)
        return row


_EVENT_FIELDS = [f for f in fields(UsageEvent) if f.name != "mark_id"]


def event_tokens(event: UsageEvent) -> int:
    if event.total_tokens is not None:
        return event.total_tokens
    return event.prompt_tokens + event.completion_tokens
