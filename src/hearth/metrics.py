"""Prometheus metrics, served at ``/metrics``: traffic, tokens, latency, TTFT and health.

Each app gets its own registry so that several apps in one process (tests) never collide.

Every label value is bounded: families, route templates (never raw paths) with a known HTTP method,
configured model ids and variants (a name nobody configured is ``-``), statuses and fixed reasons.
No key, secret or caller text ever becomes a label: each would be a new series for ever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hearth.engines.base import EngineActivity
from hearth.errors import ErrorKind
from hearth.gateway.call import Call
from hearth.gateway.shadow import ShadowOutcome

StatusSource = Callable[[], Mapping[str, Mapping[str, Any]]]
ActivitySource = Callable[[], Mapping[str, EngineActivity]]
CountSource = Callable[[], int]

UNKNOWN = "-"  # the model/variant label of a request whose model never resolved
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


# The refusal reasons as the metric has always named them (docs/deploy/observability.md).
_REFUSALS = {
    ErrorKind.RATE_LIMITED.value: "rate_limit_exceeded",
    ErrorKind.QUOTA_EXCEEDED.value: "insufficient_quota",
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hearth_requests",
            "API requests by family, route, model, variant and status.",
            ["family", "route", "model", "variant", "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "hearth_tokens",
            "Tokens processed: type prompt (in) or completion (out).",
            ["model", "variant", "type"],
            registry=self.registry,
        )
        self.images = Counter("hearth_images", "Images classified.", ["model"], registry=self.registry)
        self.latency = Histogram(
            "hearth_request_duration_seconds",
            "Request latency, to the end of the response (a stream's last event).",
            ["family", "route", "model", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "hearth_time_to_first_token_seconds",
            "Time to first token.",
            ["model", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter(
            "hearth_rate_limit_refusals",
            "Requests refused by a key's limits (429), by family and reason.",
            ["family", "reason"],
            registry=self.registry,
        )
        self.shadow = Counter(
            "hearth_shadow_requests",
            "Shadow copies by route, shadow model and outcome (compared, dropped, failed).",
            ["route", "shadow", "outcome"],
            registry=self.registry,
        )
        self.shadow_exact = Counter(
            "hearth_shadow_exact_matches",
            "Shadow answers identical to the live answer.",
            ["route", "shadow"],
            registry=self.registry,
        )
        self.shadow_agreement = Histogram(
            "hearth_shadow_agreement",
            "Word-overlap F1 between the shadow's and the live answer (0 to 1).",
            ["route", "shadow"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
            registry=self.registry,
        )
        self.shadow_latency = Histogram(
            "hearth_shadow_duration_seconds",
            "How long the shadow model took to answer a copy.",
            ["route", "shadow"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.models_ready = Gauge("hearth_models_ready", "Models loaded and serving.", registry=self.registry)
        self.ledger_pending = Gauge(
            "hearth_ledger_pending_rows", "Usage rows not yet written.", registry=self.registry
        )
        self.ledger_lag = Gauge(
            "hearth_ledger_lag_seconds",
            "Age of the oldest usage row not yet written.",
            registry=self.registry,
        )
        self.shadow_waiting = Gauge(
            "hearth_shadow_queue_length",
            "Shadow copies waiting for the shadow worker.",
            registry=self.registry,
        )

    def watch(
        self,
        engines: ActivitySource,
        models_ready: CountSource,
        ledger_pending: CountSource,
        ledger_lag: Callable[[], float],
        shadow_waiting: CountSource,
        statuses: StatusSource = dict,
    ) -> None:
        """Export engine queues and batching, upstream endpoints, ready models and the ledger
        queue, read at each scrape."""
        self.registry.register(_EngineCollector(engines))
        self.registry.register(_UpstreamCollector(statuses))
        self.models_ready.set_function(models_ready)
        self.ledger_pending.set_function(ledger_pending)
        self.ledger_lag.set_function(ledger_lag)
        self.shadow_waiting.set_function(shadow_waiting)

    def observe_shadow(self, outcome: ShadowOutcome) -> None:
        self.shadow.labels(outcome.alias, outcome.shadow_model, outcome.outcome).inc()
        if outcome.outcome != "compared":
            return
        if outcome.exact:
            self.shadow_exact.labels(outcome.alias, outcome.shadow_model).inc()
        if outcome.overlap is not None:
            self.shadow_agreement.labels(outcome.alias, outcome.shadow_model).observe(outcome.overlap)
        if outcome.latency_s is not None:
            self.shadow_latency.labels(outcome.alias, outcome.shadow_model).observe(outcome.latency_s)

    def observe(self, call: Call, status: int, error_kind: str | None = None) -> None:
        served, meter, family = call.resolution, call.metering, call.identity.family
        model = served.model if served.resolved and served.model else UNKNOWN
        variant = served.variant or UNKNOWN
        route = bounded_route(call.identity.route)
        self.requests.labels(family, route, model, variant, str(status)).inc()
        self.latency.labels(family, route, model, variant).observe(call.latency_ms() / 1000)
        if status == 429:
            reason = _REFUSALS.get(error_kind or "", "other")
            self.refusals.labels(family, reason).inc()
        if meter.prompt_tokens:
            self.tokens.labels(model, variant, "prompt").inc(meter.prompt_tokens)
        if meter.completion_tokens:
            self.tokens.labels(model, variant, "completion").inc(meter.completion_tokens)
        if meter.images:
            self.images.labels(model).inc(meter.images)
        if call.ttft_ms is not None:
            self.ttft.labels(model, variant).observe(call.ttft_ms / 1000)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def bounded_route(route: str) -> str:
    """``METHOD /template``, with any method outside the standard ones as ``OTHER``.

    The template is the matched route's (``unmatched`` for no route), but the method is whatever
    the client sent, and HTTP allows any token there.
    """
    method, _, template = route.partition(" ")
    return route if method in _METHODS else f"OTHER {template}"


class _EngineCollector(Collector):
    def __init__(self, source: ActivitySource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "hearth_engine_running", "Sequences in a slot, or items in the forward pass.", labels=["model"]
        )
        waiting = GaugeMetricFamily(
            "hearth_engine_waiting", "Requests queued for a slot or the next batch.", labels=["model"]
        )
        batches = CounterMetricFamily(
            "hearth_engine_batches",
            "Forward passes: llama_decode calls, or embedding/vision batches.",
            labels=["model"],
        )
        items = CounterMetricFamily(
            "hearth_engine_batch_items",
            "Tokens (LLM) or inputs (embeddings, images) those forward passes carried.",
            labels=["model"],
        )
        kv = GaugeMetricFamily(
            "hearth_engine_kv_cache_usage_ratio",
            "The share of a chat model's KV cache its running sequences hold (0 to 1).",
            labels=["model"],
        )
        for model, activity in self._source().items():
            running.add_metric([model], activity.running)
            waiting.add_metric([model], activity.waiting)
            batches.add_metric([model], activity.batches)
            items.add_metric([model], activity.batch_items)
            if activity.kv_cache_usage is not None:
                kv.add_metric([model], activity.kv_cache_usage)
        yield from (running, waiting, batches, items, kv)


class _UpstreamCollector(Collector):
    """Each upstream endpoint's health, load and latency (labels: the model and the endpoint's
    URL without credentials; both come from the config, so they stay few)."""

    def __init__(self, source: StatusSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "endpoint"]
        up = GaugeMetricFamily(
            "hearth_upstream_up", "1 when the endpoint is healthy and its breaker closed.", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "hearth_upstream_in_flight", "Requests this replica has at the endpoint.", labels=labels
        )
        latency = GaugeMetricFamily(
            "hearth_upstream_first_byte_seconds",
            "Moving average of the time to the endpoint's first byte.",
            labels=labels,
        )
        requests = CounterMetricFamily(
            "hearth_upstream_requests", "Requests sent to the endpoint.", labels=labels
        )
        errors = CounterMetricFamily("hearth_upstream_errors", "Requests the endpoint failed.", labels=labels)
        for model, status in self._source().items():
            for endpoint in status.get("endpoints") or []:
                key = [model, str(endpoint["endpoint"])]
                up.add_metric(key, 1.0 if endpoint["healthy"] and endpoint["breaker"] == "closed" else 0.0)
                in_flight.add_metric(key, endpoint["in_flight"])
                if endpoint["latency_ms"] is not None:
                    latency.add_metric(key, endpoint["latency_ms"] / 1000)
                requests.add_metric(key, endpoint["requests"])
                errors.add_metric(key, endpoint["errors"])
        yield from (up, in_flight, latency, requests, errors)
