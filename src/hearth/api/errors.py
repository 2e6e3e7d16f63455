"""Render every failure in the calling family's own error shape, words and status.

Never FastAPI's 422: validation errors are 400s that name the request field. The error's label
is left in the request's state for the middleware, which reports it when the call closes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hearth.api.families import Families
from hearth.errors import ErrorKind, HearthError, InvalidRequest, NotFound

log = logging.getLogger("hearth.api")

_STATUS_KINDS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.PERMISSION,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.INVALID_REQUEST,
    413: ErrorKind.TOO_LARGE,
    415: ErrorKind.INVALID_REQUEST,
    429: ErrorKind.RATE_LIMITED,
}
_STATUS_REASONS = {405: "method_not_allowed", 415: "unsupported_media_type"}


def request_field(loc: Sequence[Any], body: Any, missing: bool) -> str | None:
    """Where in the request a validation error is, as ``messages[0].content``.

    Pydantic's location also names the union members it tried (``input.str``) and the tags of
    tagged unions; only the parts that are in the request body are kept. A missing field is
    not in the body, so it is kept as the last part.
    """
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    node: Any = body
    kept: list[str | int] = []
    for index, part in enumerate(parts):
        found, child = _child(node, part)
        if found:
            node = child
        elif not (missing and index == len(parts) - 1 and isinstance(part, str)):
            continue  # a union member or tag pydantic tried, not a field of the request
        kept.append(part)
    if body is None and parts:  # no body to walk (query or path parameters): the location as given
        kept = parts
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in kept).lstrip(".")
    return text or None


def _child(node: Any, part: object) -> tuple[bool, Any]:
    if isinstance(node, dict) and isinstance(part, str) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    """The most telling of the validation errors: the one deepest in the request (a union's
    members each report; the member the body was meant to be gets furthest into it)."""
    errors = exc.errors()
    if not errors:
        return InvalidRequest("invalid request")
    if errors[0].get("type") == "json_invalid":
        return InvalidRequest(
            "could not parse the JSON body of your request: " + str(errors[0].get("msg", ""))
        )
    located = [(request_field(e.get("loc", ()), exc.body, e.get("type") == "missing"), e) for e in errors]
    param, first = max(located, key=lambda pair: _depth(pair[0]))
    if param is None and first.get("type") in ("model_attributes_type", "dict_type"):
        return InvalidRequest("the request body must be a JSON object (Content-Type: application/json)")
    msg = "field required" if first.get("type") == "missing" else str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return InvalidRequest(f"{param}: {msg}{more}" if param else msg + more, param=param)


def _depth(param: str | None) -> int:
    return -1 if param is None else param.count(".") + param.count("[")


def install_error_handlers(app: FastAPI, families: Families) -> None:
    def render(request: Request, error: HearthError) -> Response:
        request.state.error_label = error.label
        path = request.url.path
        # A route may have said which of its fields this request used (``request.state.words``).
        words = getattr(request.state, "words", None)
        return families.for_path(path).error_response(error, path, words)

    @app.exception_handler(HearthError)
    async def _hearth(request: Request, exc: HearthError) -> Response:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return render(request, validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            error: HearthError = NotFound(f"no route for {request.method} {request.url.path}")
        else:
            error = HearthError(str(exc.detail), reason=_STATUS_REASONS.get(exc.status_code))
            error.status_code = exc.status_code
            error.kind = _STATUS_KINDS.get(exc.status_code, ErrorKind.INTERNAL)
        response = render(request, error)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(json.JSONDecodeError)
    async def _json(request: Request, exc: json.JSONDecodeError) -> Response:
        return render(request, InvalidRequest(f"could not parse the JSON body of your request: {exc.msg}"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(request, HearthError("the server had an internal error while processing your request"))
