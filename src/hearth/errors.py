"""Every error Hearth reports to a client, in one hierarchy.

Library errors (llama.cpp, PIL, SQLAlchemy, redis) are mapped to these at the boundary where
they occur (``raise ... from exc``), so the API layer renders exactly one kind of exception.

    HearthError                      500 server_error
    ├── InvalidRequest               400 invalid_request_error
    │   ├── ContextLengthExceeded    400 code=context_length_exceeded
    │   └── InvalidImage             400 code=invalid_image
    ├── AuthenticationFailed         401 authentication_error / invalid_api_key
    ├── PermissionDenied             403 permission_error
    ├── NotFound                     404 not_found_error
    │   └── ModelNotFound            404 code=model_not_found
    ├── PayloadTooLarge              413
    ├── RateLimited                  429 code=rate_limit_exceeded (+ Retry-After)
    │   └── QuotaExceeded            429 code=insufficient_quota
    ├── Overloaded                   503 code=server_overloaded (+ Retry-After)
    │   └── NotReady                 503 code=not_ready
    └── EngineFailure                500 code=engine_error
"""

from __future__ import annotations


class HearthError(Exception):
    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        """The OpenAI error envelope."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after + 0.499)))}


class InvalidRequest(HearthError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_value"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class InvalidImage(InvalidRequest):
    code = "invalid_image"


class AuthenticationFailed(HearthError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(HearthError):
    status_code = 403
    error_type = "permission_error"
    code = "model_not_allowed"


class NotFound(HearthError):
    status_code = 404
    error_type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    error_type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(HearthError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(HearthError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class QuotaExceeded(RateLimited):
    error_type = "insufficient_quota"
    code = "insufficient_quota"


class Overloaded(HearthError):
    status_code = 503
    error_type = "server_error"
    code = "server_overloaded"


class NotReady(Overloaded):
    code = "not_ready"


class EngineFailure(HearthError):
    status_code = 500
    error_type = "server_error"
    code = "engine_error"
