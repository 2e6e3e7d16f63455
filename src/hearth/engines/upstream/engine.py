"""Models served by another server: any OpenAI-compatible one, or one of Anthropic's Messages API.

The engine holds no weights: ``load`` reads the key (from ``api_key_env`` or ``api_key_file``,
never from the config) and asks the server what it states about the model (its context
length); ``start`` begins the endpoints' health checks. Every request goes out in the
server's dialect and comes back as neutral events, through the transport's retries and
timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import httpx
import numpy as np

from hearth.config import ModelKind, ModelSpec
from hearth.engines.base import ConversationEngine, EmbeddingEngine, Embeddings, EngineActivity, ModelInfo
from hearth.engines.context import EngineContext
from hearth.engines.upstream import anthropic_dialect, openai_dialect
from hearth.engines.upstream.endpoints import Endpoint, server_queue
from hearth.engines.upstream.transport import Transport, server_root
from hearth.errors import ContextLengthExceeded, EngineFailure, Subject, Unsupported, UpstreamFailure
from hearth.inference.events import GenerationDone, UpstreamEvent
from hearth.inference.types import ChatRequest, CompletionRequest

log = logging.getLogger("hearth.upstream")


def read_secret(spec: ModelSpec) -> str | None:
    """The upstream's key, from the environment or a file; None when the model names neither."""
    if spec.api_key_env:
        value = os.environ.get(spec.api_key_env)
        if not value:
            raise EngineFailure(f"the environment variable {spec.api_key_env} (api_key_env) is not set")
        return value.strip()
    if spec.api_key_file:
        path = Path(spec.api_key_file).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise EngineFailure(f"the key file {path} (api_key_file) cannot be read: {exc.strerror}") from exc
    return None


def headers_for(spec: ModelSpec, secret: str | None) -> dict[str, str]:
    if spec.backend == "anthropic":
        headers = {"anthropic-version": anthropic_dialect.API_VERSION}
        if secret:
            headers["x-api-key"] = secret
        return headers
    return {"Authorization": f"Bearer {secret}"} if secret else {}


class _Upstream:
    """What the chat and embedding engines share: the key, the transport, the health checks."""

    spec: ModelSpec
    kind: ClassVar[ModelKind]
    transport: Transport
    _health: asyncio.Task[None] | None = None
    _context: int | None = None

    def _connect(self, spec: ModelSpec) -> None:
        secret = read_secret(spec)
        self.transport = Transport(spec, headers_for(spec, secret), secret)

    @property
    def upstream_model(self) -> str:
        return self.spec.upstream_model or self.spec.id

    def _paths(self) -> tuple[str, str]:
        """Where the model list and the health check are, below each endpoint's base URL."""
        if self.spec.backend == "anthropic":
            return "/v1/models", "/v1/models"
        return "/models", "/models"

    async def start(self) -> None:
        if self.spec.health_check_s > 0:
            self._health = asyncio.create_task(self._check_forever(), name=f"health-{self.spec.id}")

    async def stop(self) -> None:
        if self._health is not None:
            self._health.cancel()
            await asyncio.gather(self._health, return_exceptions=True)
        await self.transport.aclose()

    async def _check_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._check(e) for e in self.transport.pool.endpoints))
            await asyncio.sleep(self.spec.health_check_s)

    async def _check(self, endpoint: Endpoint) -> None:
        """Is it up (``GET /models``), and how much work does it say it has (its metrics)?"""
        path, _ = self._paths()
        try:
            status, text = await self.transport.probe(endpoint.url + path)
            healthy = status < 500
            if healthy and self._context is None and status == 200:
                self._context = self._stated_context(json.loads(text))
            self.transport.pool.checked(endpoint, healthy, None if healthy else f"HTTP {status}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.transport.pool.checked(endpoint, False, f"health check: {type(exc).__name__}")
            return
        if endpoint.extra.get("metrics") is False:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            status, text = await self.transport.probe(server_root(endpoint.url) + "/metrics")
            queue = server_queue(text) if status == 200 else None
            endpoint.extra["metrics"] = queue is not None  # a server without them is not asked again
            endpoint.server_queue = queue or 0.0

    def _stated_context(self, models: Any) -> int | None:
        if self.spec.backend == "anthropic":
            return None
        return openai_dialect.context_length(models, self.upstream_model)

    def _discover(self) -> None:
        """At load, best-effort: the context the server states (the config's wins): llama-server's
        per-slot context from ``/props``, else what ``GET /models`` says."""
        if self.spec.context_length is not None or self.spec.backend == "anthropic":
            return
        path, _ = self._paths()
        timeout, headers = self.spec.connect_timeout_s, self.transport.headers
        for endpoint in self.transport.pool.endpoints:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                props = httpx.get(server_root(endpoint.url) + "/props", headers=headers, timeout=timeout)
                if props.status_code == 200 and (found := openai_dialect.runtime_context(props.json())):
                    self._context = found
                    return
            try:
                reply = httpx.get(endpoint.url + path, headers=headers, timeout=timeout)
                if reply.status_code == 200:
                    self._context = self._stated_context(reply.json())
                    return
            except (httpx.HTTPError, ValueError):
                continue

    def endpoint_views(self) -> list[dict[str, Any]]:
        return self.transport.pool.views()

    def status(self) -> dict[str, Any]:
        return {"upstream_model": self.upstream_model, "endpoints": self.endpoint_views()}

    def upstream_info(self, context_length: int | None) -> ModelInfo:
        extra = {
            "upstream_model": self.upstream_model,
            "endpoints": [e.label for e in self.transport.pool.endpoints],
        }
        return ModelInfo(self.spec.id, self.kind, self.spec.backend, context_length=context_length,
                         device="upstream", extra=extra)  # fmt: skip

    def upstream_activity(self) -> EngineActivity:
        running = sum(e.in_flight for e in self.transport.pool.endpoints)
        return EngineActivity(running=running, waiting=0)


@dataclasses.dataclass(frozen=True)
class _Dialect:
    """How one API family's generation answers read: streamed events, and a whole answer."""

    reader: Callable[[bool], openai_dialect.StreamReader | anthropic_dialect.StreamReader]
    whole: Callable[[Any], list[Any]]


OPENAI = _Dialect(openai_dialect.StreamReader, openai_dialect.whole_as_chunks)
ANTHROPIC = _Dialect(anthropic_dialect.StreamReader, anthropic_dialect.whole_as_events)


class UpstreamChatEngine(_Upstream, ConversationEngine):
    def __init__(self, spec: ModelSpec, context: EngineContext) -> None:
        super().__init__(spec, context)
        self._connect(spec)

    def load(self) -> None:
        self._discover()

    @property
    def context_length(self) -> int | None:
        return self.spec.context_length or self._context

    def info(self) -> ModelInfo:
        return self.upstream_info(self.context_length)

    def activity(self) -> EngineActivity:
        return self.upstream_activity()

    def converse(self, request: ChatRequest) -> AsyncGenerator[UpstreamEvent, None]:
        if self.spec.backend == "anthropic":
            body = anthropic_dialect.messages_body(request, self.upstream_model, self.context_length)
            return self._generate("/v1/messages", body, ANTHROPIC)
        return self._generate(
            "/chat/completions", openai_dialect.chat_body(request, self.upstream_model), OPENAI
        )

    def complete(self, request: CompletionRequest) -> AsyncGenerator[UpstreamEvent, None]:
        if self.spec.backend == "anthropic":
            raise anthropic_dialect.refuse_completions()
        body = openai_dialect.completion_body(request, self.upstream_model)
        return self._generate("/completions", body, OPENAI)

    async def _generate(
        self, path: str, body: dict[str, Any], dialect: _Dialect
    ) -> AsyncGenerator[UpstreamEvent, None]:
        reader = dialect.reader(not body.get("stream"))
        # Each choice's end waits for the answer's end: the server's usage comes after it on the
        # wire, and the families render a choice's last event with the final counts.
        ends: list[UpstreamEvent] = []
        async for payload in self._payloads(path, body, dialect):
            for event in reader.read(payload):
                if isinstance(event, tuple) and isinstance(event[1], GenerationDone):
                    ends.append(event)
                else:
                    yield event
        usage = reader.usage()
        if usage is not None:
            yield usage
        for end in ends:
            yield end

    async def _payloads(
        self, path: str, body: dict[str, Any], dialect: _Dialect
    ) -> AsyncGenerator[Any, None]:
        """The upstream's stream events; or, for a request the caller does not stream, its whole
        answer as the same events: one body to parse instead of a network chunk per token, which
        is most of what a gateway spends on a request."""
        if not body.get("stream"):
            answer = await self.transport.json("POST", path, body, wait=self.spec.answer_timeout_s)
            for payload in dialect.whole(answer):
                yield payload
            return
        async with self.transport.open("POST", path, body) as response:
            async for payload in self.transport.events(response):
                yield payload

    async def count_tokens(self, request: ChatRequest) -> int:
        """Anthropic's ``count_tokens``; vLLM's ``/tokenize`` with messages; another Hearth's
        ``/v1/tokenize``; llama-server's ``/apply-template`` then ``/tokenize``. What the server
        cannot count is refused, never guessed."""
        if self.spec.backend == "anthropic":
            body = anthropic_dialect.count_body(request, self.upstream_model)
            answer = await self.transport.json("POST", "/v1/messages/count_tokens", body)
            return int(answer["input_tokens"])
        messages = [openai_dialect.message(m) for m in request.messages]
        payload: dict[str, Any] = {"model": self.upstream_model, "messages": messages}
        if request.tools:
            payload["tools"] = openai_dialect.chat_body(request, self.upstream_model)["tools"]
        for counted in (self._vllm_count, self._hearth_count, self._llama_server_count):
            with contextlib.suppress(_NotHere):
                return await counted(payload)
        raise Unsupported(
            f"the server of the model {self.spec.id!r} does not say how many tokens a prompt has",
            subject=Subject.MODEL,
        )

    async def _vllm_count(self, payload: dict[str, Any]) -> int:
        return _count(await self._optional("/tokenize", payload, root=True))

    async def _hearth_count(self, payload: dict[str, Any]) -> int:
        return _count(await self._optional("/tokenize", payload))

    async def _llama_server_count(self, payload: dict[str, Any]) -> int:
        if payload.get("tools"):
            raise _NotHere
        template = await self._optional("/apply-template", {"messages": payload["messages"]}, root=True)
        if not isinstance(template.get("prompt"), str):
            raise _NotHere
        body = {"content": template["prompt"], "add_special": False}
        tokens = (await self._optional("/tokenize", body, root=True)).get("tokens")
        if not isinstance(tokens, list):
            raise _NotHere
        return len(tokens)

    async def _optional(self, path: str, body: dict[str, Any], *, root: bool = False) -> dict[str, Any]:
        """A route some servers have: its JSON, or ``_NotHere`` where this one lacks it."""
        try:
            answer = await self.transport.json("POST", path, body, root=root)
        except (UpstreamFailure, ContextLengthExceeded) as exc:
            raise _NotHere from exc
        except Exception as exc:
            if getattr(exc, "status_code", None) in (400, 404, 405, 422):
                raise _NotHere from exc
            raise
        if not isinstance(answer, dict):
            raise _NotHere
        return answer


class _NotHere(Exception):
    """The upstream has no such route (or answers it in another shape)."""


def _count(answer: dict[str, Any]) -> int:
    count = answer.get("count")
    if not isinstance(count, int):
        raise _NotHere
    return count


class UpstreamEmbeddingEngine(_Upstream, EmbeddingEngine):
    def __init__(self, spec: ModelSpec, context: EngineContext) -> None:
        super().__init__(spec, context)
        self._connect(spec)

    def load(self) -> None:
        self._discover()

    def info(self) -> ModelInfo:
        return self.upstream_info(self._context)

    def activity(self) -> EngineActivity:
        return self.upstream_activity()

    async def embed(self, texts: list[str], *, truncate: bool = False) -> Embeddings:
        body = {"model": self.upstream_model, "input": texts, "encoding_format": "float"}
        answer = await self.transport.json("POST", "/embeddings", body)
        try:
            rows = sorted(answer["data"], key=lambda d: int(d.get("index", 0)))
            vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamFailure("the upstream's embeddings answer is not in OpenAI's shape") from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise UpstreamFailure(f"the upstream returned {len(vectors)} embeddings for {len(texts)} texts")
        total = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        return Embeddings(vectors, _shares(total, texts))


def _shares(total: int, texts: list[str]) -> list[int]:
    """The upstream's token count split over the texts by length (their sum is the count)."""
    if not texts:
        return []
    sizes = [max(1, len(t)) for t in texts]
    counts = [total * size // sum(sizes) for size in sizes]
    counts[-1] += total - sum(counts)
    return counts
