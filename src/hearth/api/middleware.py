"""Pure ASGI middleware: body size limit, and the per-request context that becomes a ledger row.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and we can see
exactly when a stream ends or its client vanishes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hearth.errors import InvalidRequest, PayloadTooLarge
from hearth.gateway.context import RequestContext

API_PREFIXES = ("/v1/", "/v2/", "/api/")
CLIENT_CLOSED = 499  # nginx's code for "client closed request"


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``; 431 for request headers over ``max_header_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_header_bytes: int = 32 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if sum(len(name) + len(value) for name, value in headers) > self.max_header_bytes:
            error = InvalidRequest(
                f"request headers too large: the limit is {self.max_header_bytes} bytes",
                code="headers_too_large",
            )
            await _send_json(send, 431, error.to_dict())
            return
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_json(send, 413, PayloadTooLarge(self._message()).to_dict())
                return
        # Bodies without a content-length (chunked) are read here, up to the limit, and replayed:
        # an error raised from inside receive() would be masked by the framework's body parser.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _send_json(send, 413, PayloadTooLarge(self._message()).to_dict())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        body = {"type": "http.request", "body": data, "more_body": False}
        await self.app(_as_json_if_json(scope, data), _replay([body], receive), send)

    def _message(self) -> str:
        return f"request body too large: the limit is {self.max_bytes} bytes"


_NOT_DECLARED_JSON = (None, b"application/x-www-form-urlencoded", b"text/plain")
_JSON_START = re.compile(rb"\s*[\[{]")


def _as_json_if_json(scope: Scope, body: bytes) -> Scope:
    """Read a JSON object sent without a JSON content type as JSON, on the API routes.

    ``curl -d '{...}'`` labels its body form-encoded, and Ollama's and llama.cpp's documented
    examples rely on servers reading it as JSON anyway; the framework would otherwise refuse it.
    """
    if not scope["path"].startswith(API_PREFIXES):
        return scope
    headers = scope.get("headers", [])
    content_type = next((v for k, v in headers if k == b"content-type"), None)
    if content_type is not None:
        content_type = content_type.split(b";")[0].strip().lower()
    # The body is only peeked at (no copy: an image upload can be megabytes), and only when its
    # type would not already say JSON.
    if content_type not in _NOT_DECLARED_JSON or not _JSON_START.match(body):
        return scope
    kept = [(k, v) for k, v in headers if k != b"content-type"]
    return {**scope, "headers": [*kept, (b"content-type", b"application/json")]}


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay_receive() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay_receive


async def _send_json(send: Send, status: int, body: object) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Gives API requests a ``RequestContext`` and hands it, with the final status, to ``on_done``."""

    def __init__(self, app: ASGIApp, on_done: Callable[[RequestContext, int], Awaitable[None]]) -> None:
        self.app = app
        self.on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or f"req_{uuid.uuid4().hex}"
        context = RequestContext(request_id=request_id[:64], route=f"{scope['method']} {path}"[:128])
        scope.setdefault("state", {})["context"] = context
        status = 500
        completed = False

        async def tracking_send(message: Message) -> None:
            nonlocal status, completed
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                extra = [(b"x-request-id", context.request_id.encode())]
                if context.admission is not None:  # OpenAI's x-ratelimit-* headers
                    extra += [(k.encode(), v.encode()) for k, v in context.admission.headers.items()]
                message["headers"] = [*message["headers"], *extra]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            await self.on_done(context, status if completed else CLIENT_CLOSED)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
