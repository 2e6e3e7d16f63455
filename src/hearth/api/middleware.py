"""Pure ASGI middleware: body size limit, and the gateway ``Call`` that becomes a ledger row.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and we can see
exactly when a stream ends or its client vanishes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hearth.api.families import Families
from hearth.api.ids import request_id
from hearth.errors import HearthError, InvalidRequest, PayloadTooLarge
from hearth.gateway.service import Gateway

API_PREFIXES = ("/v1/", "/v2/", "/api/", "/rerank", "/score")
# Probes that need no key open no call, so a load balancer polling them writes no ledger rows.
PROBE_PREFIXES = ("/v2/health/", "/api/version")
CLIENT_CLOSED = 499  # nginx's code for "client closed request"


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``; 431 for request headers over ``max_header_bytes``."""

    def __init__(
        self,
        app: ASGIApp,
        families: Families,
        max_bytes: int,
        max_header_bytes: int = 32 * 1024,
        larger: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.families = families
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self.larger = dict(larger or {})  # path prefix -> its own limit (audio uploads)

    def _limit(self, path: str) -> int:
        return next((n for prefix, n in self.larger.items() if path.startswith(prefix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if sum(len(name) + len(value) for name, value in headers) > self.max_header_bytes:
            error = InvalidRequest(
                f"request headers too large: the limit is {self.max_header_bytes} bytes",
                reason="headers_too_large",
            )
            error.status_code = 431
            await self._refuse(scope, send, error)
            return
        limit = self._limit(scope.get("path", ""))
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(scope, send, PayloadTooLarge(self._message(limit)))
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
            if seen > limit:
                await self._refuse(scope, send, PayloadTooLarge(self._message(limit)))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        body = {"type": "http.request", "body": data, "more_body": False}
        await self.app(_as_json_if_json(scope, data), _replay([body], receive), send)

    @staticmethod
    def _message(limit: int) -> str:
        return f"request body too large: the limit is {limit} bytes"

    async def _refuse(self, scope: Scope, send: Send, error: HearthError) -> None:
        """Refused before a call is opened, but still with a request id, as every response has."""
        path = scope.get("path", "")
        adapter = self.families.for_path(path)
        payload = json.dumps(adapter.error_body(error, path)).encode()
        ids = adapter.id_headers(request_id(scope.get("headers", [])))
        await send(
            {
                "type": "http.response.start",
                "status": adapter.error_status(error),
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *((k.encode(), v.encode()) for k, v in ids.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


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


class CallMiddleware:
    """Opens a gateway ``Call`` for every API request and closes it once the response is done.

    The family's headers (request id, rate-limit windows) go on the response as it starts; the
    final status (499 when the client left before the end) and the error kind the exception
    handlers noted are what the call closes with.
    """

    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        families: Families,
        trusted_id_header: str | None,
        durable: bool,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.families = families
        # The load balancer's id for a client request, the same on a retry (HA deduplication).
        self.trusted_id_header = trusted_id_header.lower().encode() if trusted_id_header else None
        self.durable = durable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIXES) or path.startswith(PROBE_PREFIXES):
            await self.app(scope, receive, send)
            return
        adapter = self.families.for_path(path)
        dedupe_key = None
        if self.trusted_id_header is not None:
            dedupe_key = (_header(scope, self.trusted_id_header) or "")[:64] or None
        call = self.gateway.open_call(
            request_id(scope.get("headers", [])), adapter.name, f"{scope['method']} {path}"[:128], dedupe_key
        )
        durable = self.durable
        state = scope.setdefault("state", {})
        state["call"] = call
        status = 500
        completed = False
        held: Message | None = None  # a whole (non-streaming) response's start, held in durable mode

        def route() -> str:
            # The matched route's template, not the raw path: ids in paths would make the route
            # an unbounded metric label.
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            return f"{scope['method']} {template}"[:128]

        async def tracking_send(message: Message) -> None:
            nonlocal status, completed, held
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = adapter.response_headers(call)
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.encode(), v.encode()) for k, v in extra.items() if k.encode().lower() not in names),
                ]
                if durable and not _streams(message):
                    held = message
                    return
                if durable and status < 400:
                    self.gateway.stream_began(call)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
                if durable:
                    # The row is committed before the client can see the answer: a replica killed
                    # now loses nothing, and a retry elsewhere is deduplicated by its key.
                    await self.gateway.close_call(call, status, state.get("error_label"), route())
            if held is not None:
                start, held = held, None
                await send(start)
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            await self.gateway.close_call(
                call, status if completed else CLIENT_CLOSED, state.get("error_label"), route()
            )


_STREAM_TYPES = (b"text/event-stream", b"application/x-ndjson")


def _streams(start: Message) -> bool:
    return any(
        k.lower() == b"content-type" and v.startswith(_STREAM_TYPES) for k, v in start.get("headers", [])
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
