"""What every API family's adapter renders: its error shape and words, its headers, its stream error frame.

The middleware and the exception handlers pick the adapter by path (``hearth.api.families``)
and ask it, so a 401 from ``/v1/messages`` looks like Anthropic's and one from ``/api/chat``
like Ollama's, while the gateway below raises the same neutral ``HearthError`` for both. The
adapter also says the error in the family's words: the subject of the error becomes the
family's own field name for it (``words``, narrowed per route by ``route_words``), both in the
message and as ``param``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError
from starlette.responses import JSONResponse

from hearth.errors import HearthError, InvalidRequest, ModelNotFound, RateLimitState, Subject, in_words
from hearth.gateway.call import Call
from hearth.inference.types import Family


@dataclass(frozen=True, slots=True)
class Said:
    """An error as one family says it: the message, and the request field it is about."""

    message: str
    param: str | None


class FamilyAdapter:
    name: ClassVar[Family]
    # The family's rate-limit header names, e.g. "x-ratelimit-{field}-{window}"; None: it has none.
    # ``field`` is limit, remaining or reset; ``window`` is requests or tokens.
    ratelimit_header: ClassVar[str | None] = None
    # The family's name for each subject of an error, and per route (its path) where it differs.
    words: ClassVar[Mapping[Subject, str]] = {}
    route_words: ClassVar[Mapping[str, Mapping[Subject, str]]] = {}

    def words_for(self, path: str) -> Mapping[Subject, str]:
        names = self.route_words.get(path)
        return self.words if names is None else {**self.words, **names}

    def say(self, error: HearthError, path: str = "", words: Mapping[Subject, str] | None = None) -> Said:
        """The error in this family's words: its route's, and ``words`` a request narrowed them to."""
        names = self.words_for(path) if not words else {**self.words_for(path), **words}
        message = in_words(error.message, names)
        if isinstance(error, ModelNotFound):
            hint = error.hint
            message = self.model_not_found(error) + (f"; {hint}" if hint else "")
        param = error.param or (names.get(error.subject) if error.subject is not None else None)
        return Said(message, param)

    def model_not_found(self, error: ModelNotFound) -> str:
        """The first half of an unknown model's message (the names it may use follow)."""
        return in_words(error.message, self.words)

    def error_status(self, error: HearthError) -> int:
        return error.status_code

    def error_body(
        self, error: HearthError, path: str = "", words: Mapping[Subject, str] | None = None
    ) -> dict[str, Any]:
        return {"error": self.say(error, path, words).message}

    def line_failure(self, error: ValidationError | HearthError, path: str) -> tuple[int, dict[str, Any]]:
        """A batch line's failure as the family's route would answer it: (status, body)."""
        if isinstance(error, ValidationError):
            error = InvalidRequest(self.invalid_field(error.errors()[0]))
        return self.error_status(error), self.error_body(error, path)

    def invalid_field(self, first: Any) -> str:
        """What a request body that fails validation is told, from its first error."""
        return f"{first['msg']}: {'.'.join(str(p) for p in first['loc'])}"

    def format_reset(self, seconds: float) -> str:
        """When a window resets, as the family writes it (OpenAI: "6m0s", Anthropic: RFC 3339)."""
        return str(max(0, round(seconds)))

    def limit_headers(self, limits: RateLimitState) -> dict[str, str]:
        template = self.ratelimit_header
        if template is None:
            return {}
        headers: dict[str, str] = {}
        windows = (
            ("requests", limits.requests_limit, limits.requests_remaining, limits.requests_reset_s),
            ("tokens", limits.tokens_limit, limits.tokens_remaining, limits.tokens_reset_s),
        )
        for window, limit, remaining, reset in windows:
            if limit is None:
                continue
            headers[template.format(field="limit", window=window)] = str(limit)
            headers[template.format(field="remaining", window=window)] = str(remaining or 0)
            headers[template.format(field="reset", window=window)] = self.format_reset(reset or 0)
        return headers

    def id_headers(self, request_id: str) -> dict[str, str]:
        """The request id, under the header name(s) the family's clients read."""
        return {"x-request-id": request_id}

    def response_headers(self, call: Call) -> dict[str, str]:
        """Headers on every response of a call: its request id, the model that served it (a
        rollout variant or not) and the key's limit windows."""
        headers = self.id_headers(call.request_id)
        if call.variant is not None:
            headers["x-hearth-variant"] = call.variant
        if call.rate_limits is not None:
            headers.update(self.limit_headers(call.rate_limits))
        return headers

    def error_headers(self, error: HearthError) -> dict[str, str]:
        headers = {} if error.limits is None else self.limit_headers(error.limits)
        if (retry := error.retry_after_header) is not None:
            headers["Retry-After"] = retry
        return headers

    def error_response(
        self, error: HearthError, path: str = "", words: Mapping[Subject, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(
            self.error_body(error, path, words),
            status_code=self.error_status(error),
            headers=self.error_headers(error),
        )
