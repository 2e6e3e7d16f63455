"""Every error the client raises, mapped from the HTTP status and the OpenAI error envelope.

    HearthAPIError                  status, type, code, param, message, retry_after
    ├── BadRequestError             400, 413, 422, 431
    ├── AuthenticationError         401
    ├── PermissionDeniedError       403
    ├── NotFoundError               404
    ├── RateLimitError              429 (retry_after from Retry-After)
    ├── ServerError                 5xx (a stream that fails mid-way, too)
    └── ConnectionFailed            no HTTP answer: refused, unreachable, timed out

httpx's exceptions never escape the client: they become ``ConnectionFailed`` (``raise ... from``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx


class HearthAPIError(Exception):
    """An error answer from the server (or no answer at all, for ``ConnectionFailed``)."""

    default_status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status if status is not None else self.default_status
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after
        super().__init__(message if self.status is None else f"HTTP {self.status}: {message}")


class BadRequestError(HearthAPIError):
    default_status = 400


class AuthenticationError(HearthAPIError):
    default_status = 401


class PermissionDeniedError(HearthAPIError):
    default_status = 403


class NotFoundError(HearthAPIError):
    default_status = 404


class RateLimitError(HearthAPIError):
    default_status = 429


class ServerError(HearthAPIError):
    default_status = 500


class ConnectionFailed(HearthAPIError):
    """The server could not be reached: nothing listens there, or it did not answer in time."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, type="connection_error", code="connection_failed")
        self.url = url


_BY_STATUS: dict[int, type[HearthAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: BadRequestError,
    422: BadRequestError,
    431: BadRequestError,
    429: RateLimitError,
}

# A mid-stream error event has no status of its own: its ``type`` says what it was.
_BY_TYPE: dict[str, type[HearthAPIError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "rate_limit_error": RateLimitError,
    "insufficient_quota": RateLimitError,
}


def error_class(status: int) -> type[HearthAPIError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else HearthAPIError


def error_from_response(response: httpx.Response) -> HearthAPIError:
    """The typed error for a non-2xx response (its body must have been read)."""
    try:
        body: object = response.json()
    except ValueError:
        body = response.text.strip() or response.reason_phrase or "no details"
    fields = envelope_fields(body)
    return error_class(response.status_code)(
        fields.pop("message", None) or f"HTTP {response.status_code}",
        status=response.status_code,
        retry_after=retry_after_seconds(response.headers),
        **fields,
    )


def error_from_event(payload: Mapping[str, Any]) -> HearthAPIError:
    """The typed error for a ``data: {"error": ...}`` event inside a stream."""
    fields = envelope_fields(payload)
    cls = _BY_TYPE.get(str(fields.get("type")), ServerError)
    return cls(fields.pop("message", None) or "the stream failed", **fields)


def envelope_fields(body: object) -> dict[str, Any]:
    """``message``/``type``/``code``/``param`` from an OpenAI envelope, or from looser shapes."""
    if isinstance(body, str):
        return {"message": body}
    if not isinstance(body, Mapping):
        return {}
    error = body.get("error", body)
    if isinstance(error, str):  # {"error": "text"} (some OpenAI-compatible servers)
        return {"message": error}
    if not isinstance(error, Mapping):
        return {}
    message = error.get("message") or error.get("detail")
    fields = {k: error.get(k) for k in ("type", "code", "param")}
    out = {k: str(v) for k, v in fields.items() if v is not None}
    if message is not None:
        out["message"] = message if isinstance(message, str) else str(message)
    return out


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``, in seconds."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def connection_error(exc: httpx.TransportError, server: str) -> ConnectionFailed:
    """``ConnectionFailed`` for an httpx transport error while talking to ``server``."""
    url = str(exc.request.url) if _has_request(exc) else server
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectionFailed(f"no server is running at {server}: connecting timed out", url=url)
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed(f"the server at {server} did not answer in time ({exc})", url=url)
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(f"no server is running at {server} ({exc})", url=url)
    return ConnectionFailed(f"the connection to {server} failed: {exc or type(exc).__name__}", url=url)


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when httpx did not attach one
    except RuntimeError:
        return False
    return True
