"""Render every failure in the OpenAI error envelope, with the right status, never FastAPI's 422."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hearth.errors import HearthError, InvalidRequest, NotFound

log = logging.getLogger("hearth.api")

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def error_response(exc: HearthError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers())


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    if first.get("type") == "json_invalid":
        return "could not parse the JSON body of your request: " + str(first.get("msg", "")), None
    if not loc and first.get("type") in ("model_attributes_type", "dict_type"):
        return "the request body must be a JSON object (Content-Type: application/json)", None
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        msg = "field required"
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return (f"{param}: {msg}{more}" if param else msg + more), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HearthError)
    async def _hearth(request: Request, exc: HearthError) -> JSONResponse:
        _note(request, exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        error = InvalidRequest(message, param=param)
        _note(request, error)
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error: HearthError = NotFound(f"no route for {request.method} {request.url.path}")
        else:
            error = HearthError(str(exc.detail))
            error.code = None
            error.status_code = exc.status_code
            error.error_type = _STATUS_TYPES.get(exc.status_code, "server_error")
        _note(request, error)
        return JSONResponse(error.to_dict(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(json.JSONDecodeError)
    async def _json(request: Request, exc: json.JSONDecodeError) -> JSONResponse:
        error = InvalidRequest(f"could not parse the JSON body of your request: {exc.msg}")
        _note(request, error)
        return error_response(error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = HearthError("the server had an internal error while processing your request")
        _note(request, error)
        return error_response(error)


def _note(request: Request, exc: HearthError) -> None:
    context = getattr(request.state, "context", None)
    if context is not None:
        context.error_type = exc.code or exc.error_type
