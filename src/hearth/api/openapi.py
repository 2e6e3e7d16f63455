"""The OpenAPI document, with the API-key headers declared as security schemes.

Keys are read from the headers inside ``authorized_call`` rather than through FastAPI's
parameter machinery (see ``hearth.api.deps``), so the document states them here instead:
Swagger UI's "Authorize" button then sends them with every call it makes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hearth.api.middleware import API_PREFIXES

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <key> (OpenAI style)",
    },
    "xApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "<key> (Anthropic style)",
    },
}
_KEYED_PREFIXES = (*API_PREFIXES, "/admin/")
_EITHER_SCHEME: list[dict[str, list[str]]] = [{"bearerKey": []}, {"xApiKey": []}]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(_KEYED_PREFIXES):
                    for operation in operations.values():
                        operation.setdefault("security", _EITHER_SCHEME)  # [] on a public route
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
