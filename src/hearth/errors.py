"""Every error Hearth reports to a client, in one hierarchy, with a neutral kind.

Library errors (llama.cpp, PIL, SQLAlchemy, redis) are mapped to these at the boundary where
they occur (``raise ... from exc``), so the API layer renders exactly one kind of exception.
Each API family renders an error in its own shape from ``kind``, ``status_code``, ``message``,
``param``, ``code`` and the numbers a client needs (``retry_after``, ``limits``):

    HearthError                      500 internal
    ├── InvalidRequest               400 invalid_request
    │   ├── ContextLengthExceeded    400 context_length_exceeded
    │   ├── InvalidImage             400 invalid_image
    │   └── Unsupported              400 unsupported (known, but not honoured)
    ├── AuthenticationFailed         401 authentication
    ├── PermissionDenied             403 permission
    ├── NotFound                     404 not_found
    │   └── ModelNotFound            404 model_not_found
    ├── PayloadTooLarge              413 request_too_large
    ├── RateLimited                  429 rate_limited (+ Retry-After, limits)
    │   └── QuotaExceeded            429 quota_exceeded
    ├── Overloaded                   503 overloaded (+ Retry-After)
    │   └── NotReady                 503 not_ready
    └── EngineFailure                500 engine_failure
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    INTERNAL = "internal"
    INVALID_REQUEST = "invalid_request"
    CONTEXT_LENGTH = "context_length_exceeded"
    INVALID_IMAGE = "invalid_image"
    UNSUPPORTED = "unsupported"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    OVERLOADED = "overloaded"
    NOT_READY = "not_ready"
    ENGINE_FAILURE = "engine_failure"


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """A key's windows as numbers; each family formats its own headers from them."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_s: float | None = None  # seconds from now until the window resets
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None

    def merge(self, other: RateLimitState) -> RateLimitState:
        """These numbers, with every value ``other`` knows taking precedence."""
        known = {k: v for k, v in dataclasses.asdict(other).items() if v is not None}
        return dataclasses.replace(self, **known)


class HearthError(Exception):
    status_code: int = 500
    kind: ErrorKind = ErrorKind.INTERNAL
    code: str | None = "internal_error"  # a finer machine-readable reason (OpenAI's ``code``)

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        limits: RateLimitState | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.limits = limits

    @property
    def retry_after_header(self) -> str | None:
        """``Retry-After`` in whole seconds, rounded up, at least 1."""
        if self.retry_after is None:
            return None
        return str(max(1, round(self.retry_after + 0.499)))


class InvalidRequest(HearthError):
    status_code = 400
    kind = ErrorKind.INVALID_REQUEST
    code = "invalid_value"


class ContextLengthExceeded(InvalidRequest):
    kind = ErrorKind.CONTEXT_LENGTH
    code = "context_length_exceeded"


class InvalidImage(InvalidRequest):
    kind = ErrorKind.INVALID_IMAGE
    code = "invalid_image"


class Unsupported(InvalidRequest):
    kind = ErrorKind.UNSUPPORTED
    code = "unsupported"


class AuthenticationFailed(HearthError):
    status_code = 401
    kind = ErrorKind.AUTHENTICATION
    code = "invalid_api_key"


class PermissionDenied(HearthError):
    status_code = 403
    kind = ErrorKind.PERMISSION
    code = "model_not_allowed"


class NotFound(HearthError):
    status_code = 404
    kind = ErrorKind.NOT_FOUND
    code = "not_found"


class ModelNotFound(NotFound):
    kind = ErrorKind.MODEL_NOT_FOUND
    code = "model_not_found"


class PayloadTooLarge(HearthError):
    status_code = 413
    kind = ErrorKind.TOO_LARGE
    code = "request_too_large"


class RateLimited(HearthError):
    status_code = 429
    kind = ErrorKind.RATE_LIMITED
    code = "rate_limit_exceeded"


class QuotaExceeded(RateLimited):
    kind = ErrorKind.QUOTA_EXCEEDED
    code = "insufficient_quota"


class Overloaded(HearthError):
    status_code = 503
    kind = ErrorKind.OVERLOADED
    code = "server_overloaded"


class NotReady(Overloaded):
    kind = ErrorKind.NOT_READY
    code = "not_ready"


class EngineFailure(HearthError):
    status_code = 500
    kind = ErrorKind.ENGINE_FAILURE
    code = "engine_error"


def as_hearth_error(exc: BaseException) -> HearthError:
    """Anything that escapes an engine or a stream, as an error a client can be shown."""
    if isinstance(exc, HearthError):
        return exc
    return EngineFailure(f"generation failed: {type(exc).__name__}")
