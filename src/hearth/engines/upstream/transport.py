"""HTTP to an upstream model's endpoints: timeouts, one retry before the first byte, errors.

A request goes to the endpoint the pool picks. If it fails before its first byte (refused,
timed out, a 5xx or a 429, a closed connection) it is tried once more on another endpoint; once
a byte has arrived it is never retried (the caller may already have part of the answer), and a
stream that breaks or goes silent for longer than ``chunk_timeout_s`` ends with an error.
Upstream errors become Hearth's own, with the upstream's message; the upstream's key never
appears in one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from hearth import tracing
from hearth.config import ModelSpec
from hearth.engines.upstream.endpoints import Endpoint, EndpointPool
from hearth.errors import (
    ContextLengthExceeded,
    HearthError,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    UpstreamFailure,
    UpstreamUnavailable,
)

log = logging.getLogger("hearth.upstream")
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
PROBE_S = 5.0  # how long a health check may take once connected
DRAIN_S = 0.5  # how long the end of a stream after [DONE] may take to arrive
STALE_RETRIES = 2  # sends again on a new connection when a kept-alive one was found closed


class Transport:
    """One model's endpoints over aiohttp: a gateway's hot path is reading the upstream's
    answers, and aiohttp's C parser and connection pool cost a fraction of a pure-Python
    client's per chunk and per request (docs/benchmarks.md, the LiteLLM comparison)."""

    def __init__(self, spec: ModelSpec, headers: Mapping[str, str], secret: str | None) -> None:
        self.spec = spec
        # Anthropic's paths carry their version (/v1/messages): its base URLs are the servers' roots.
        urls = [server_root(u) for u in spec.base_urls] if spec.backend == "anthropic" else spec.base_urls
        self.pool = EndpointPool(urls)
        self._headers = dict(headers)
        self._secret = secret
        self._session: aiohttp.ClientSession | None = None

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def session(self) -> aiohttp.ClientSession:
        """One connection pool per model, made on the running event loop when first needed."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session.loop is not loop:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                # Waits for the first byte and between chunks are timed per request, below.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.spec.connect_timeout_s),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            with contextlib.suppress(RuntimeError):  # made on an event loop that has ended
                await session.close()

    async def probe(self, url: str) -> tuple[int, str]:
        """A GET for health checks and metrics: the status and the body's text."""
        async with asyncio.timeout(self.spec.connect_timeout_s + PROBE_S), self.session().get(url) as reply:
            return reply.status, await reply.text()

    @contextlib.asynccontextmanager
    async def open(
        self, method: str, path: str, body: Any = None, *, root: bool = False, wait: float | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response of the first endpoint that answers, its body still to read. ``path`` is
        below each endpoint's base URL, or with ``root`` below its server's root (no ``/v1``).
        ``wait`` is how long its first byte may take (default ``first_byte_timeout_s``)."""
        tried: set[int] = set()
        while True:
            endpoint = self.pool.choose(tried)
            if endpoint is None:
                raise UpstreamUnavailable(
                    f"no endpoint of the model {self.spec.id!r} can take a request now "
                    f"({self._endpoint_states()})",
                    retry_after=2,
                )
            tried.add(self.pool.index(endpoint))
            last_chance = not self._another(tried)
            base = server_root(endpoint.url) if root else endpoint.url
            response = await self._send(endpoint, base + path, method, body, last_chance, wait)
            if response is None:
                continue
            try:
                yield response
            finally:
                response.release()  # back to the pool when read to the end, else closed
                self.pool.finished(endpoint)
            return

    async def _send(
        self, endpoint: Endpoint, url: str, method: str, body: Any, last_chance: bool, wait: float | None
    ) -> aiohttp.ClientResponse | None:
        """One attempt; None when it failed in a way worth another endpoint and one is left."""
        pool = self.pool
        pool.started(endpoint)
        started = time.perf_counter()
        wait = wait or self.spec.first_byte_timeout_s
        try:
            async with asyncio.timeout(wait):
                traced: dict[str, str] = {}
                tracing.inject(traced)  # the caller's trace goes on to the upstream engine
                response = await self._request(endpoint, method, url, body, traced)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            pool.finished(endpoint)
            reason = _describe(exc, wait)
            pool.failed(endpoint, reason)
            log.warning("upstream %s (%s): %s", self.spec.id, endpoint.label, reason)
            if not last_chance:
                return None
            raise UpstreamUnavailable(
                f"the upstream of the model {self.spec.id!r} did not answer: {reason}", retry_after=2
            ) from exc
        if response.status < 400:
            pool.succeeded(endpoint, time.perf_counter() - started)
            return response
        try:
            async with asyncio.timeout(self.spec.first_byte_timeout_s):
                text = (await response.read()).decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError):
            text = ""
        response.release()
        pool.finished(endpoint)
        status = response.status
        if status >= 500:
            pool.failed(endpoint, f"HTTP {status}")
        else:
            pool.succeeded(endpoint, time.perf_counter() - started)
        if status in RETRIED_STATUSES and not last_chance:
            return None
        raise self.error(status, text, response.headers)

    async def _request(
        self, endpoint: Endpoint, method: str, url: str, body: Any, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """Send, and send again where a kept-alive connection turned out closed: servers close
        idle ones after a few seconds, and some right after a stream, so the server may close
        one just as it is reused. Nothing was answered on it, so the request goes again on
        another connection (each closed one leaves the pool), and the endpoint is not blamed."""
        for attempt in range(STALE_RETRIES + 1):
            try:
                return await self.session().request(method, url, json=body, headers=headers or None)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if attempt == STALE_RETRIES or not _stale(exc):
                    raise
                log.info("upstream %s (%s): a kept-alive connection was closed; sending again",
                         self.spec.id, endpoint.label)  # fmt: skip
        raise AssertionError("unreachable")

    def _another(self, tried: set[int]) -> bool:
        now = time.monotonic()
        return any(i not in tried and e.available(now) for i, e in enumerate(self.pool.endpoints))

    def _endpoint_states(self) -> str:
        return ", ".join(
            f"{e.label}: {e.breaker()}, {'up' if e.healthy else 'down'}" for e in self.pool.endpoints
        )

    async def json(
        self, method: str, path: str, body: Any = None, *, root: bool = False, wait: float | None = None
    ) -> Any:
        """A whole JSON answer (models, embeddings, token counts, an unstreamed generation)."""
        wait = wait or self.spec.first_byte_timeout_s
        async with self.open(method, path, body, root=root, wait=wait) as response:
            try:
                async with asyncio.timeout(wait):
                    raw = await response.read()
                return json.loads(raw)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamFailure(f"the upstream's answer broke off: {type(exc).__name__}") from exc
            except ValueError as exc:
                raise UpstreamFailure("the upstream answered with malformed JSON") from exc

    async def events(self, response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
        """The JSON payloads of a server-sent-event stream (``[DONE]`` ends it).

        A gateway reads many events per request, so this is the hot path: it splits lines out
        of each network chunk itself, and the timeout between chunks is a rescheduled timer,
        not a task per read.
        """
        content = response.content
        timeout = self.spec.chunk_timeout_s
        rest = b""
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await content.readany()
            except TimeoutError as exc:
                raise UpstreamFailure(
                    f"the upstream sent nothing for {timeout:g}s in the middle of its answer"
                ) from exc
            except aiohttp.ClientError as exc:
                raise UpstreamFailure(f"the upstream's stream broke off: {type(exc).__name__}") from exc
            if not chunk:
                return
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                if not line.startswith(b"data:"):
                    continue  # event names, comments, keep-alives, the blank line between events
                data = line[5:].strip()
                if data == b"[DONE]":
                    await self._finish(content)
                    return
                try:
                    yield json.loads(data)
                except ValueError as exc:
                    raise UpstreamFailure("the upstream sent a malformed stream event") from exc

    async def _finish(self, content: aiohttp.StreamReader) -> None:
        """Read a finished stream to its end, so its connection goes back to the pool: a
        half-read one is closed, and a new connection per request costs more than the request
        itself. A server that keeps the stream open after ``[DONE]`` is not waited for."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with asyncio.timeout(DRAIN_S):
                await content.read()

    def error(self, status: int, text: str, headers: Mapping[str, str]) -> HearthError:
        """An upstream's error answer as Hearth's own, in the caller's terms where it is theirs."""
        message = self.scrub(upstream_message(text) or f"HTTP {status}")
        if status in (400, 422):
            lowered = message.lower()
            if "context" in lowered and ("length" in lowered or "maximum" in lowered or "window" in lowered):
                return ContextLengthExceeded(f"the upstream model's context is too small: {message}")
            return InvalidRequest(f"the upstream refused the request: {message}")
        if status == 413:
            return PayloadTooLarge(f"the upstream refused the request as too large: {message}")
        if status == 429:
            return RateLimited(
                f"the upstream is limiting requests: {message}",
                retry_after=_retry_after(headers),
                reason="upstream_rate_limited",
            )
        if status in (401, 403):
            return UpstreamFailure(
                f"the upstream refused Hearth's credentials (HTTP {status}); the operator should check "
                f"the model's api_key_env or api_key_file"
            )
        if status == 404:
            return UpstreamFailure(f"the upstream has no such model or route (HTTP 404): {message}")
        if status == 503:
            return UpstreamUnavailable(
                f"the upstream is unavailable: {message}", retry_after=_retry_after(headers)
            )
        return UpstreamFailure(f"the upstream failed (HTTP {status}): {message}")

    def scrub(self, text: str) -> str:
        """Never pass the upstream's key on, even where an upstream echoes it."""
        return text.replace(self._secret, "[key]") if self._secret else text


def server_root(base_url: str) -> str:
    """A base URL without its API version (``http://box:8000/v1`` -> ``http://box:8000``)."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


def upstream_message(text: str) -> str | None:
    """The human part of an error body, whichever shape the upstream uses."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
        for value in (error, body.get("message"), body.get("detail")):
            if isinstance(value, str):
                return value[:500]
    return text.strip()[:500] or None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


def _stale(exc: aiohttp.ClientError) -> bool:
    """A connection closed under the request before any answer (not a refusal: that is the
    endpoint's fault, and counts against it)."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE)


def _describe(exc: BaseException, first_byte_s: float) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connecting timed out"
    if isinstance(exc, TimeoutError):
        return f"no answer within {first_byte_s:g}s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused or unreachable"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return type(exc).__name__
