"""OpenAI's error envelope and ``x-ratelimit-*`` headers (Hearth's own routes use them too)."""

from __future__ import annotations

from typing import Any, ClassVar

from hearth.api.adapter import FamilyAdapter
from hearth.errors import ErrorKind, HearthError
from hearth.inference.types import Family

_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.CONTEXT_LENGTH: "invalid_request_error",
    ErrorKind.INVALID_IMAGE: "invalid_request_error",
    ErrorKind.UNSUPPORTED: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.MODEL_NOT_FOUND: "invalid_request_error",
    ErrorKind.TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMITED: "rate_limit_error",
    ErrorKind.QUOTA_EXCEEDED: "insufficient_quota",
}


def error_body(error: HearthError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": _TYPES.get(error.kind, "server_error"),
            "param": error.param,
            "code": error.code,
        }
    }


def reset_text(seconds: float) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``1h2m3s``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class OpenAIAdapter(FamilyAdapter):
    name: ClassVar[Family] = "openai"

    def error_body(self, error: HearthError) -> dict[str, Any]:
        return error_body(error)

    ratelimit_header: ClassVar[str | None] = "x-ratelimit-{field}-{window}"

    def format_reset(self, seconds: float) -> str:
        return reset_text(seconds)


class HearthAdapter(OpenAIAdapter):
    """Hearth's own routes (classify, usage, tokenize, admin) answer in the OpenAI envelope."""

    name: ClassVar[Family] = "hearth"
