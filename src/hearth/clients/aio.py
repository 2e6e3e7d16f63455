"""``AsyncHearthClient``: the asyncio twin of ``HearthClient``, over the same ``_ops``."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack, cast

import httpx

from hearth.clients import _ops as ops
from hearth.clients._config import DEFAULT_TIMEOUT, Endpoint, origin
from hearth.clients.errors import connection_error, error_from_response
from hearth.clients.streaming import AsyncChatStream, StreamKind
from hearth.clients.types import (
    ChatCompletion,
    Classification,
    Completion,
    Embeddings,
    GenerationParams,
    Messages,
    Model,
    UsageReport,
)

T = TypeVar("T")


class AsyncHearthClient:
    """An asyncio typed client for Hearth, or any OpenAI-compatible server (chat, completions, embeddings, models).

    ``base_url`` and ``api_key`` default to ``HEARTH_BASE_URL`` / ``HEARTH_API_KEY``, then to
    ``http://127.0.0.1:8000`` and no key. The base URL may end in ``/v1`` or not.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = Endpoint.resolve(base_url, api_key)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=True)

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    # --- generation ---

    async def chat(
        self, messages: Messages, *, model: str, **params: Unpack[GenerationParams]
    ) -> ChatCompletion:
        """One chat completion; ``messages`` is a list of OpenAI message dicts, or one user string."""
        return await self._run(ops.chat(self.endpoint, model, messages, params))

    async def chat_stream(
        self, messages: Messages, *, model: str, **params: Unpack[GenerationParams]
    ) -> AsyncChatStream:
        """Iterate the returned stream for text deltas; then read its ``usage`` and ``finish_reason``."""
        body = ops.chat_body(model, messages, True, params)
        return await self._stream(self.endpoint.request("POST", "chat/completions", json=body), "chat")

    async def complete(
        self, prompt: str | Sequence[str], *, model: str, **params: Unpack[GenerationParams]
    ) -> Completion:
        return await self._run(ops.complete(self.endpoint, model, prompt, params))

    async def complete_stream(
        self, prompt: str, *, model: str, **params: Unpack[GenerationParams]
    ) -> AsyncChatStream:
        body = ops.completion_body(model, prompt, True, params)
        return await self._stream(self.endpoint.request("POST", "completions", json=body), "completion")

    # --- other capabilities ---

    async def embed(
        self, input: str | Sequence[str], *, model: str, dimensions: int | None = None
    ) -> Embeddings:
        return await self._run(ops.embed(self.endpoint, model, input, {"dimensions": dimensions}))

    async def classify(
        self, image: ops.ImageSource, *, model: str | None = None, top_k: int = 5
    ) -> Classification:
        """Classify a file path, raw bytes, or an http(s) URL (downloaded here, then uploaded)."""
        return await self._run(ops.classify(self.endpoint, image, model, top_k))

    async def image_part(self, image: ops.ImageSource) -> dict[str, Any]:
        """An OpenAI ``image_url`` content part (a data URL) for a path, bytes or URL."""
        return await self._run(ops.image_part(image))

    async def usage(self) -> UsageReport:
        """The calling key's usage and remaining budget (Hearth only)."""
        return await self._run(ops.usage(self.endpoint))

    async def list_models(self) -> list[Model]:
        return await self._run(ops.list_models(self.endpoint))

    async def get_model(self, model_id: str) -> Model:
        return await self._run(ops.get_model(self.endpoint, model_id))

    # --- transport ---

    async def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise connection_error(exc, origin(request.url)) from exc

    async def _run(self, op: ops.Op[T]) -> T:
        try:
            request = next(op)  # an op may finish without a request (an image read from a file)
            while True:
                request = op.send(await self._send(request))
        except StopIteration as stop:
            return cast(T, stop.value)

    async def _stream(self, request: httpx.Request, kind: StreamKind) -> AsyncChatStream:
        response = await self._send(request, stream=True)
        if not response.is_success:
            await response.aread()
            await response.aclose()
            raise error_from_response(response)
        return AsyncChatStream(response, kind, self.endpoint.server)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHearthClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
