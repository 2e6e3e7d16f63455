"""OpenTelemetry traces: off unless OpenTelemetry's own variables turn them on.

``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set at start-up
installs an SDK tracer provider that batches spans to that OTLP/HTTP receiver, named by
``OTEL_SERVICE_NAME`` (default ``hearth``). Without it every span below is OpenTelemetry's no-op
span, which costs a function call. A request's server span continues the caller's
``traceparent``; its children are ``auth``, ``limits``, ``queue``, ``prefill``, ``decode`` and
``ledger``, and an upstream engine's request carries the trace on in its own ``traceparent``.
The JSON access log line has the trace id.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

log = logging.getLogger("hearth.tracing")
_TRACER_NAME = "hearth"


def enabled_by_environment() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


_from_environment: list[bool] = []  # configured from the environment once per process


def configure(exporter: object | None = None) -> bool:
    """Install the SDK provider when the environment asks for it (or with ``exporter``, for
    tests: spans go to it at once). Returns whether spans are now recorded."""
    if exporter is None:
        if _from_environment:
            return _from_environment[0]
        _from_environment.append(enabled_by_environment())
        if not _from_environment[0]:
            return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        name = os.environ.get("OTEL_SERVICE_NAME", "hearth")
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        trace.set_tracer_provider(provider)
    if exporter is not None:
        assert isinstance(exporter, SpanExporter)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("tracing on: spans go to the OTLP receiver the environment names")
    return True


def flush() -> None:
    """Send what is batched (at server stop)."""
    provider = trace.get_tracer_provider()
    flush_spans = getattr(provider, "force_flush", None)
    if flush_spans is not None:
        with contextlib.suppress(Exception):
            flush_spans(5000)


def tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


@contextlib.contextmanager
def server_span(name: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """The span of one HTTP request, continuing the caller's ``traceparent`` if it sent one."""
    parent = propagate.extract(dict(headers))
    with tracer().start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as span:
        yield span


@contextlib.contextmanager
def span(name: str) -> Iterator[Span]:
    with tracer().start_as_current_span(name) as current:
        yield current


def timed_span(name: str, start_ns: int, end_ns: int, parent: Context | None) -> None:
    """A finished span for a stretch measured elsewhere (the engine's queue, prefill, decode)."""
    tracer().start_span(name, context=parent, start_time=start_ns).end(end_time=end_ns)


def current_context() -> Context:
    from opentelemetry import context

    return context.get_current()


def inject(headers: MutableMapping[str, str]) -> None:
    """The current trace, as ``traceparent``, on an outgoing request's headers."""
    propagate.inject(headers)


def trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
