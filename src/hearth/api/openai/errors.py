"""OpenAI's error envelope, its codes, its field names and its ``x-ratelimit-*`` headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hearth.api.adapter import FamilyAdapter
from hearth.errors import ErrorKind, HearthError, Subject
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

# OpenAI's ``code`` for each kind, where the error brings no finer reason of its own.
CODES = {
    ErrorKind.INTERNAL: "internal_error",
    ErrorKind.INVALID_REQUEST: "invalid_value",
    ErrorKind.CONTEXT_LENGTH: "context_length_exceeded",
    ErrorKind.INVALID_IMAGE: "invalid_image",
    ErrorKind.UNSUPPORTED: "unsupported",
    ErrorKind.AUTHENTICATION: "invalid_api_key",
    ErrorKind.PERMISSION: "model_not_allowed",
    ErrorKind.NOT_FOUND: "not_found",
    ErrorKind.MODEL_NOT_FOUND: "model_not_found",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMITED: "rate_limit_exceeded",
    ErrorKind.QUOTA_EXCEEDED: "insufficient_quota",
    ErrorKind.OVERLOADED: "server_overloaded",
    ErrorKind.NOT_READY: "not_ready",
    ErrorKind.ENGINE_FAILURE: "engine_error",
}

CHAT_WORDS: Mapping[Subject, str] = {
    Subject.MODEL: "model",
    Subject.PROMPT: "messages",
    Subject.IMAGES: "messages",
    Subject.OUTPUT_LIMIT: "max_tokens",
    Subject.OUTPUT_FORMAT: "response_format",
    Subject.TOOLS: "tools",
    Subject.TOOL_CHOICE: "tool_choice",
    Subject.LOGIT_BIAS: "logit_bias",
    Subject.INPUT: "input",
    Subject.DIMENSIONS: "dimensions",
    Subject.IMAGE: "image",
    Subject.CHOICES: "n",
}


def code(error: HearthError) -> str | None:
    return error.reason or CODES.get(error.kind)


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
    ratelimit_header: ClassVar[str | None] = "x-ratelimit-{field}-{window}"
    words: ClassVar[Mapping[Subject, str]] = CHAT_WORDS
    route_words: ClassVar[Mapping[str, Mapping[Subject, str]]] = {
        "/v1/completions": {Subject.PROMPT: "prompt"},
    }

    def error_body(
        self, error: HearthError, path: str = "", words: Mapping[Subject, str] | None = None
    ) -> dict[str, Any]:
        said = self.say(error, path, words)
        return {
            "error": {
                "message": said.message,
                "type": _TYPES.get(error.kind, "server_error"),
                "param": said.param,
                "code": code(error),
            }
        }

    def format_reset(self, seconds: float) -> str:
        return reset_text(seconds)


OPENAI = OpenAIAdapter()
