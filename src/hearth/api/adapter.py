"""What every API family's adapter renders: its error shape, its headers, its stream error frame.

The middleware and the exception handlers pick the adapter by path (``hearth.api.families``)
and ask it, so a 401 from ``/v1/messages`` looks like Anthropic's and one from ``/api/chat``
like Ollama's, while the gateway below raises the same neutral ``HearthError`` for both.
"""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.responses import JSONResponse

from hearth.errors import HearthError, RateLimitState
from hearth.gateway.call import Call
from hearth.inference.types import Family


class FamilyAdapter:
    name: ClassVar[Family]
    # The family's rate-limit header names, e.g. "x-ratelimit-{field}-{window}"; None: it has none.
    # ``field`` is limit, remaining or reset; ``window`` is requests or tokens.
    ratelimit_header: ClassVar[str | None] = None

    def error_status(self, error: HearthError) -> int:
        return error.status_code

    def error_body(self, error: HearthError) -> dict[str, Any]:
        return {"error": error.message}

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

    def error_response(self, error: HearthError) -> JSONResponse:
        return JSONResponse(
            self.error_body(error), status_code=self.error_status(error), headers=self.error_headers(error)
        )
