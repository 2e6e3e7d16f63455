"""Anthropic's error shape, its status codes and its ``anthropic-ratelimit-*`` headers.

``{"type": "error", "error": {"type": ..., "message": ...}}``, with 529 ``overloaded_error``
where Hearth's neutral status is 503 (a full queue, models still loading), as Anthropic's
clients retry it. The same body is the ``event: error`` frame of a stream that fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from hearth.api.adapter import FamilyAdapter
from hearth.errors import ErrorKind, HearthError, Subject
from hearth.inference.types import Family

OVERLOADED_STATUS = 529

_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.CONTEXT_LENGTH: "invalid_request_error",
    ErrorKind.INVALID_IMAGE: "invalid_request_error",
    ErrorKind.UNSUPPORTED: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.MODEL_NOT_FOUND: "not_found_error",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMITED: "rate_limit_error",
    ErrorKind.QUOTA_EXCEEDED: "rate_limit_error",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.NOT_READY: "overloaded_error",
}


WORDS: Mapping[Subject, str] = {
    Subject.MODEL: "model",
    Subject.PROMPT: "messages",
    Subject.IMAGES: "messages",
    Subject.OUTPUT_LIMIT: "max_tokens",
    Subject.OUTPUT_FORMAT: "output_config.format",
    Subject.TOOLS: "tools",
    Subject.TOOL_CHOICE: "tool_choice",
}


def error_type(error: HearthError) -> str:
    return _TYPES.get(error.kind, "api_error")


def reset_time(seconds: float, now: datetime | None = None) -> str:
    """When a window resets, as Anthropic sends it: an RFC 3339 UTC time to the second."""
    at = (now or datetime.now(UTC)) + timedelta(seconds=max(0.0, seconds))
    return at.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnthropicAdapter(FamilyAdapter):
    name: ClassVar[Family] = "anthropic"
    words: ClassVar[Mapping[Subject, str]] = WORDS

    def invalid_field(self, first: Any) -> str:
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"

    def error_status(self, error: HearthError) -> int:
        if error.kind in (ErrorKind.OVERLOADED, ErrorKind.NOT_READY):
            return OVERLOADED_STATUS
        return error.status_code

    def error_body(
        self, error: HearthError, path: str = "", words: Mapping[Subject, str] | None = None
    ) -> dict[str, Any]:
        message = self.say(error, path, words).message
        return {"type": "error", "error": {"type": error_type(error), "message": message}}

    ratelimit_header: ClassVar[str | None] = "anthropic-ratelimit-{window}-{field}"

    def format_reset(self, seconds: float) -> str:
        return reset_time(seconds)

    def id_headers(self, request_id: str) -> dict[str, str]:
        # Anthropic's SDKs read ``request-id`` (``response._request_id``, ``error.request_id``).
        return {"x-request-id": request_id, "request-id": request_id}


ANTHROPIC = AnthropicAdapter()
