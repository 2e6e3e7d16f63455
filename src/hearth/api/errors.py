"""Render every failure in the calling family's own error shape, with the right status.

Never FastAPI's 422: validation errors are 400s that name the field. The kind of the error is
left in the request's state for the middleware, which reports it when the call closes.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hearth.api.families import family_for_path
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


def render(request: Request, error: HearthError) -> Response:
    request.state.error_kind = error.code or error.kind.value
    return family_for_path(request.url.path).error_response(error)


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = exc.errors()
    if not errors:
        return InvalidRequest("invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    if first.get("type") == "json_invalid":
        return InvalidRequest("could not parse the JSON body of your request: " + str(first.get("msg", "")))
    if not loc and first.get("type") in ("model_attributes_type", "dict_type"):
        return InvalidRequest("the request body must be a JSON object (Content-Type: application/json)")
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        msg = "field required"
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return InvalidRequest(f"{param}: {msg}{more}" if param else msg + more, param=param)


def install_error_handlers(app: FastAPI) -> None:
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
            error = HearthError(str(exc.detail))
            error.code = None
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
