"""``HearthClient``: the blocking client. Every method is one line over ``_ops``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, Unpack, cast

import httpx

from hearth.clients import _ops as ops
from hearth.clients._config import DEFAULT_TIMEOUT, Endpoint, origin
from hearth.clients.errors import connection_error, error_from_response
from hearth.clients.streaming import ChatStream, StreamKind
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


class HearthClient:
    """A typed client for Hearth, or any OpenAI-compatible server (chat, completions, embeddings, models).

    ``base_url`` and ``api_key`` default to ``HEARTH_BASE_URL`` / ``HEARTH_API_KEY``, then to
    ``http://127.0.0.1:8000`` and no key. The base URL may end in ``/v1`` or not.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = Endpoint.resolve(base_url, api_key)
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True)

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    # --- generation ---

    def chat(self, messages: Messages, *, model: str, **params: Unpack[GenerationParams]) -> ChatCompletion:
        """One chat completion; ``messages`` is a list of OpenAI message dicts, or one user string."""
        return self._run(ops.chat(self.endpoint, model, messages, params))

    def chat_stream(
        self, messages: Messages, *, model: str, **params: Unpack[GenerationParams]
    ) -> ChatStream:
        """Iterate the returned stream for text deltas; then read its ``usage`` and ``finish_reason``."""
        body = ops.chat_body(model, messages, True, params)
        return self._stream(self.endpoint.request("POST", "chat/completions", json=body), "chat")

    def complete(
        self, prompt: str | Sequence[str], *, model: str, **params: Unpack[GenerationParams]
    ) -> Completion:
        return self._run(ops.complete(self.endpoint, model, prompt, params))

    def complete_stream(self, prompt: str, *, model: str, **params: Unpack[GenerationParams]) -> ChatStream:
        body = ops.completion_body(model, prompt, True, params)
        return self._stream(self.endpoint.request("POST", "completions", json=body), "completion")

    # --- other capabilities ---

    def embed(self, input: str | Sequence[str], *, model: str, dimensions: int | None = None) -> Embeddings:
        return self._run(ops.embed(self.endpoint, model, input, {"dimensions": dimensions}))

    def classify(self, image: ops.ImageSource, *, model: str | None = None, top_k: int = 5) -> Classification:
        """Classify a file path, raw bytes, or an http(s) URL (downloaded here, then uploaded)."""
        return self._run(ops.classify(self.endpoint, image, model, top_k))

    def transcribe_stream(
        self, audio: Path, *, model: str | None = None, language: str | None = None, translate: bool = False
    ) -> Iterator[dict[str, Any]]:
        """OpenAI's transcription stream events (``transcript.text.delta`` ..., ``.done``); a
        translation is not streamed, so it comes as one ``done`` event."""
        request = ops.transcription(self.endpoint, audio, model=model, language=language, translate=translate)
        response = self._send(request, stream=True)
        try:
            if not response.is_success:
                response.read()
                raise error_from_response(response)
            if translate:
                response.read()
                yield {"type": "transcript.text.done", "text": response.json().get("text", "")}
                return
            yield from ops.transcript_events(response.iter_lines())
        finally:
            response.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any API route (``files``, ``batches`` ...): the answer, or its error raised."""
        response = self._send(self.endpoint.request(method, path, **kwargs))
        if not response.is_success:
            raise error_from_response(response)
        return response

    def image_part(self, image: ops.ImageSource) -> dict[str, Any]:
        """An OpenAI ``image_url`` content part (a data URL) for a path, bytes or URL."""
        return self._run(ops.image_part(image))

    def usage(self) -> UsageReport:
        """The calling key's usage and remaining budget (Hearth only)."""
        return self._run(ops.usage(self.endpoint))

    def list_models(self) -> list[Model]:
        return self._run(ops.list_models(self.endpoint))

    def get_model(self, model_id: str) -> Model:
        return self._run(ops.get_model(self.endpoint, model_id))

    # --- transport ---

    def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        try:
            return self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise connection_error(exc, origin(request.url)) from exc

    def _run(self, op: ops.Op[T]) -> T:
        try:
            request = next(op)  # an op may finish without a request (an image read from a file)
            while True:
                request = op.send(self._send(request))
        except StopIteration as stop:
            return cast(T, stop.value)

    def _stream(self, request: httpx.Request, kind: StreamKind) -> ChatStream:
        response = self._send(request, stream=True)
        if not response.is_success:
            response.read()
            response.close()
            raise error_from_response(response)
        return ChatStream(response, kind, self.endpoint.server)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HearthClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
