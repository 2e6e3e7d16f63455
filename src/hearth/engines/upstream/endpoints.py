"""The replicas of one upstream model: which to send a request to, and which to leave alone.

Each endpoint counts the requests it has in flight and, where its server exports them, the
requests queued and running there (vLLM's, SGLang's and llama-server's Prometheus gauges). A
request goes to the endpoint with the least outstanding work. A circuit breaker per endpoint
opens after ``BREAKER_FAILURES`` failures in a row (connection refused, timeouts, 5xx): for
``BREAKER_COOLDOWN_S`` the endpoint gets nothing, then one trial request, which closes it again
or reopens it. Active health checks (``GET {base}/models``) keep the state fresh between
requests, so a dead endpoint is skipped before a caller meets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

BREAKER_FAILURES = 3
BREAKER_COOLDOWN_S = 10.0
LATENCY_WEIGHT = 0.2  # how far one answer moves the latency average

BreakerState = Literal["closed", "open", "half-open"]


# Gauges of queued and running requests that servers export (vLLM, SGLang, llama-server with
# --metrics, another Hearth): what balancing adds to the requests in flight from here.
QUEUE_GAUGES = (
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "sglang:num_queue_reqs",
    "sglang:num_running_reqs",
    "llamacpp:requests_deferred",
    "llamacpp:requests_processing",
    "hearth_engine_waiting",
    "hearth_engine_running",
)


def server_queue(metrics_text: str) -> float | None:
    """The requests a server says it has queued and running, summed over its label sets; None
    when it exports none of the gauges Hearth knows."""
    total, found = 0.0, False
    for line in metrics_text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in QUEUE_GAUGES:
            try:
                total += float(line.rsplit(" ", 1)[1])
                found = True
            except (IndexError, ValueError):
                continue
    return total if found else None


def label_of(url: str) -> str:
    """A base URL as logs, errors and metric labels show it: no userinfo, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


@dataclass
class Endpoint:
    url: str  # the base URL requests are built on (may hold credentials: never shown)
    label: str = ""
    in_flight: int = 0
    failures: int = 0  # in a row
    open_until: float = 0.0  # the breaker keeps traffic away until then
    trial: bool = False  # half-open: one request is finding out
    healthy: bool = True  # the last health check's verdict
    server_queue: float = 0.0  # requests queued and running on the server, from its metrics
    latency_s: float | None = None  # moving average of the time to the first byte
    requests: int = 0
    errors: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.label = self.label or label_of(self.url)

    def breaker(self, now: float | None = None) -> BreakerState:
        now = time.monotonic() if now is None else now
        if self.failures < BREAKER_FAILURES:
            return "closed"
        return "open" if now < self.open_until else "half-open"

    def available(self, now: float) -> bool:
        state = self.breaker(now)
        if state == "open":
            return False
        if state == "half-open":
            return not self.trial
        return self.healthy

    def load(self) -> float:
        return self.in_flight + self.server_queue

    def view(self) -> dict[str, Any]:
        """What operators see of it (``/admin/models``, ``hearth models list``)."""
        return {
            "endpoint": self.label,
            "healthy": self.healthy,
            "breaker": self.breaker(),
            "in_flight": self.in_flight,
            "server_queue": self.server_queue,
            "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 1),
            "requests": self.requests,
            "errors": self.errors,
            "last_error": self.last_error,
        }


class EndpointPool:
    def __init__(self, urls: list[str]) -> None:
        self.endpoints = [Endpoint(url.rstrip("/")) for url in urls]

    def choose(self, exclude: set[int] = frozenset()) -> Endpoint | None:  # type: ignore[assignment]
        """The endpoint to try next (not one already tried), least outstanding work first."""
        now = time.monotonic()
        candidates = [e for i, e in enumerate(self.endpoints) if i not in exclude and e.available(now)]
        if not candidates:
            return None
        chosen = min(candidates, key=lambda e: (e.load(), e.latency_s or 0.0))
        if chosen.breaker(now) == "half-open":
            chosen.trial = True
        return chosen

    def index(self, endpoint: Endpoint) -> int:
        return self.endpoints.index(endpoint)

    def started(self, endpoint: Endpoint) -> None:
        endpoint.in_flight += 1
        endpoint.requests += 1

    def finished(self, endpoint: Endpoint) -> None:
        endpoint.in_flight = max(0, endpoint.in_flight - 1)

    def succeeded(self, endpoint: Endpoint, first_byte_s: float) -> None:
        """It answered: its breaker closes, and its latency average moves."""
        endpoint.failures, endpoint.trial, endpoint.healthy = 0, False, True
        previous = endpoint.latency_s
        endpoint.latency_s = (
            first_byte_s if previous is None else previous + LATENCY_WEIGHT * (first_byte_s - previous)
        )

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        """It failed (refused, timed out, 5xx): enough of these in a row open its breaker."""
        endpoint.errors += 1
        endpoint.failures += 1
        endpoint.last_error = reason
        endpoint.trial = False
        if endpoint.failures >= BREAKER_FAILURES:
            endpoint.open_until = time.monotonic() + BREAKER_COOLDOWN_S

    def checked(self, endpoint: Endpoint, healthy: bool, reason: str | None = None) -> None:
        """A health check's verdict; a dead endpoint also counts toward its breaker."""
        if healthy:
            endpoint.healthy = True
            if endpoint.breaker() != "closed":
                endpoint.failures, endpoint.trial = 0, False
        else:
            endpoint.healthy = False
            self.failed(endpoint, reason or "health check failed")

    def views(self) -> list[dict[str, Any]]:
        return [e.view() for e in self.endpoints]
