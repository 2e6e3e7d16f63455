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
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

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


class Transport:
    def __init__(self, spec: ModelSpec, headers: Mapping[str, str], secret: str | None) -> None:
        self.spec = spec
        # Anthropic's paths carry their version (/v1/messages): its base URLs are the servers' roots.
        urls = [server_root(u) for u in spec.base_urls] if spec.backend == "anthropic" else spec.base_urls
        self.pool = EndpointPool(urls)
        self._headers = dict(headers)
        self._secret = secret
        self._client: httpx.AsyncClient | None = None

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def client(self) -> httpx.AsyncClient:
        """One connection pool per model, made on the event loop the first time it is needed."""
        if self._client is None:
            spec = self.spec
            read = max(spec.first_byte_timeout_s, spec.chunk_timeout_s)
            self._client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(connect=spec.connect_timeout_s, read=read, write=read, pool=read),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    @contextlib.asynccontextmanager
    async def open(
        self, method: str, path: str, body: Any = None, *, root: bool = False
    ) -> AsyncIterator[httpx.Response]:
        """The response of the first endpoint that answers, its body still to read. ``path`` is
        below each endpoint's base URL, or with ``root`` below its server's root (no ``/v1``)."""
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
            response = await self._send(endpoint, base + path, method, body, last_chance)
            if response is None:
                continue
            try:
                yield response
            finally:
                await response.aclose()
                self.pool.finished(endpoint)
            return

    async def _send(
        self, endpoint: Endpoint, url: str, method: str, body: Any, last_chance: bool
    ) -> httpx.Response | None:
        """One attempt; None when it failed in a way worth another endpoint and one is left."""
        client, pool = self.client(), self.pool
        pool.started(endpoint)
        started = time.perf_counter()
        try:
            request = client.build_request(method, url, json=body)
            response = await asyncio.wait_for(
                client.send(request, stream=True), self.spec.first_byte_timeout_s
            )
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            pool.finished(endpoint)
            reason = _describe(exc, self.spec.first_byte_timeout_s)
            pool.failed(endpoint, reason)
            log.warning("upstream %s (%s): %s", self.spec.id, endpoint.label, reason)
            if not last_chance:
                return None
            raise UpstreamUnavailable(
                f"the upstream of the model {self.spec.id!r} did not answer: {reason}", retry_after=2
            ) from exc
        if response.status_code < 400:
            pool.succeeded(endpoint, time.perf_counter() - started)
            return response
        try:
            text = (await asyncio.wait_for(response.aread(), self.spec.first_byte_timeout_s)).decode(
                "utf-8", "replace"
            )
        except (httpx.HTTPError, TimeoutError):
            text = ""
        await response.aclose()
        pool.finished(endpoint)
        status = response.status_code
        if status >= 500:
            pool.failed(endpoint, f"HTTP {status}")
        else:
            pool.succeeded(endpoint, time.perf_counter() - started)
        if status in RETRIED_STATUSES and not last_chance:
            return None
        raise self.error(status, text, response.headers)

    def _another(self, tried: set[int]) -> bool:
        now = time.monotonic()
        return any(i not in tried and e.available(now) for i, e in enumerate(self.pool.endpoints))

    def _endpoint_states(self) -> str:
        return ", ".join(
            f"{e.label}: {e.breaker()}, {'up' if e.healthy else 'down'}" for e in self.pool.endpoints
        )

    async def json(self, method: str, path: str, body: Any = None, *, root: bool = False) -> Any:
        """A whole JSON answer (models, embeddings, token counts)."""
        async with self.open(method, path, body, root=root) as response:
            try:
                raw = await asyncio.wait_for(response.aread(), self.spec.first_byte_timeout_s)
                return json.loads(raw)
            except (httpx.HTTPError, TimeoutError) as exc:
                raise UpstreamFailure(f"the upstream's answer broke off: {type(exc).__name__}") from exc
            except ValueError as exc:
                raise UpstreamFailure("the upstream answered with malformed JSON") from exc

    async def events(self, response: httpx.Response) -> AsyncIterator[Any]:
        """The JSON payloads of a server-sent-event stream (``[DONE]`` ends it)."""
        lines = response.aiter_lines()
        timeout = self.spec.chunk_timeout_s
        while True:
            try:
                line = await asyncio.wait_for(anext(lines), timeout)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise UpstreamFailure(
                    f"the upstream sent nothing for {timeout:g}s in the middle of its answer"
                ) from exc
            except httpx.HTTPError as exc:
                raise UpstreamFailure(f"the upstream's stream broke off: {type(exc).__name__}") from exc
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                yield json.loads(data)
            except ValueError as exc:
                raise UpstreamFailure("the upstream sent a malformed stream event") from exc

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


def _describe(exc: BaseException, first_byte_s: float) -> str:
    if isinstance(exc, TimeoutError | httpx.ReadTimeout):
        return f"no answer within {first_byte_s:g}s"
    if isinstance(exc, httpx.ConnectTimeout):
        return "connecting timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable"
    return type(exc).__name__
