"""Logging for ``hearth serve``: plain text (the default) or one JSON object per line.

``HEARTH_LOG_FORMAT=json`` (``--log-format json``) turns on structured logs for a log shipper:
every line is an object with ``timestamp``, ``level``, ``logger``, ``message`` and, inside a
request, its ``request_id``: the value of the response's ``x-request-id`` header. Each request
ends with one access line from :class:`AccessLogMiddleware` that adds ``method``, ``path``
(never the query string), ``status``, ``latency_ms`` and ``client``. uvicorn's own loggers go
through the same formatter; its access logger is turned off in JSON mode because its line is
written when the headers go out, before a stream ends, and knows neither the id nor the latency.

Secrets never reach a log line: API keys and admin secrets (``hk-...``), bearer tokens and the
configured admin key are masked in every message, whichever logger wrote it.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hearth import tracing
from hearth.api import ids

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"

request_id_var: ContextVar[str | None] = ContextVar("hearth_request_id", default=None)
access_log = logging.getLogger("hearth.access")

# hk-... is every secret Hearth issues (keys, the bootstrap admin secret); Bearer/x-api-key
# values are whatever a client presented, which may be a mistyped secret.
_SECRET_PATTERNS = (
    re.compile(r"hk-[A-Za-z0-9_\-]+"),
    re.compile(r"(?i)(bearer\s+)\S+"),
    re.compile(r"(?i)(x-api-key['\"]?\s*[:=,]\s*['\"]?)[^\s'\",]+"),
)
# Fields an access line carries beside the standard ones.
ACCESS_FIELDS = ("trace_id", "method", "path", "status", "latency_ms", "client", "http_version")


class Redactor:
    """Masks secrets in text: the issued-secret patterns plus any configured literal secret."""

    def __init__(self, literals: tuple[str, ...] = ()) -> None:
        self.literals = tuple(s for s in literals if s and len(s) >= 8)

    def __call__(self, text: str) -> str:
        for literal in self.literals:
            text = text.replace(literal, REDACTED)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
        return text


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = self.redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def formatter(fmt: LogFormat, secrets: tuple[str, ...] = ()) -> logging.Formatter:
    """The formatter for ``fmt``, masking ``secrets`` (a logging.config ``()`` factory)."""
    redact = Redactor(secrets)
    return JsonFormatter(redact) if fmt == "json" else TextFormatter(redact)


def configure(level: str, fmt: LogFormat, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """Set up logging, and return the same ``log_config`` for uvicorn (which applies it again).

    One handler on the root logger; uvicorn's loggers propagate to it instead of keeping their
    own formats. In JSON mode uvicorn's access logger is off (``access_log=False``).
    """
    logging.config.dictConfig(log_config(level, fmt, secrets))
    logging.captureWarnings(True)  # warnings.warn from libraries become log lines too
    return log_config(level, fmt, secrets)  # a fresh copy: dictConfig consumes parts of its input


def log_config(level: str, fmt: LogFormat, secrets: tuple[str, ...]) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hearth": {"()": formatter, "fmt": fmt, "secrets": secrets}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "hearth"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


class AccessLogMiddleware:
    """The outermost middleware: gives every request its id and logs one access line at its end.

    The id is the client's ``x-request-id`` if it sent one, else a new ``req_<hex>``; it is put
    in the request's headers so that the call middleware (and its error path) use the same one,
    and so the ``x-request-id`` response header and the log line always agree.
    """

    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        request_id = ids.request_id(headers)
        if ids.client_request_id(headers) is None:
            scope = {**scope, "headers": [*headers, (b"x-request-id", request_id.encode())]}
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"x-request-id":
                        request_id = value.decode("latin-1")
            await send(message)

        method, path = scope.get("method", "-"), scope.get("path", "")
        traced = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        with tracing.server_span(f"{method} {path}", traced) as span:
            trace_id = tracing.trace_id()
            try:
                await self.app(scope, receive, tracking_send)
            finally:
                span.set_attribute("http.request.method", method)
                span.set_attribute("url.path", path)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("hearth.request_id", request_id)
                self._log(scope, request_id, status, started, trace_id)
                request_id_var.reset(token)

    def _log(self, scope: Scope, request_id: str, status: int, started: float, trace_id: str | None) -> None:
        if not self.enabled:
            return
        client = scope.get("client")
        access_log.info(
            "%s %s %d",
            scope.get("method", "-"),
            scope.get("path", ""),
            status,
            extra={
                "request_id": request_id,
                "trace_id": trace_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "http_version": scope.get("http_version"),
            },
        )
