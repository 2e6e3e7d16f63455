"""Server-sent event streams of chat or completion chunks, as iterators of text deltas.

``ChatStream`` (sync) and ``AsyncChatStream`` (async) share ``StreamDecoder``; both expose the
final ``usage``, ``finish_reason`` and the whole ``text`` once iterated. A ``data: {"error": ...}``
event raises the mapped ``HearthAPIError``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Literal

import httpx

from hearth.clients.errors import ServerError, connection_error, error_from_event
from hearth.clients.types import Usage

StreamKind = Literal["chat", "completion"]


class StreamDecoder:
    """Turns the lines of an OpenAI SSE stream into text deltas of the first choice."""

    def __init__(self, kind: StreamKind) -> None:
        self.kind = kind
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def feed(self, line: str) -> str | None:
        """The text delta in one line, if any. Comments, ``event:`` and blank lines carry none."""
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk: Any = json.loads(data)
        except ValueError as exc:
            raise ServerError(f"the stream sent an invalid event: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            return None
        if chunk.get("error") is not None:
            self.done = True
            raise error_from_event(chunk)
        self.id = chunk.get("id") or self.id
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = Usage.model_validate(chunk["usage"])
        text = None
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            text = (choice.get("delta") or {}).get("content") if self.kind == "chat" else choice.get("text")
        if text:
            self._parts.append(text)
            return str(text)
        return None


class _StreamResult:
    def __init__(self, response: httpx.Response, kind: StreamKind, server: str) -> None:
        self.response = response
        self._decoder = StreamDecoder(kind)
        self._server = server
        self._started = False

    @property
    def text(self) -> str:
        """Everything received so far."""
        return self._decoder.text

    @property
    def usage(self) -> Usage | None:
        """Token usage, sent at the end when ``stream_options.include_usage`` was asked for."""
        return self._decoder.usage

    @property
    def finish_reason(self) -> str | None:
        return self._decoder.finish_reason

    @property
    def model(self) -> str | None:
        return self._decoder.model

    @property
    def id(self) -> str | None:
        return self._decoder.id


class ChatStream(_StreamResult):
    """Iterate for text deltas; the connection closes at the end, on an error, or on ``close()``."""

    def __iter__(self) -> Iterator[str]:
        if self._started:  # a stream can be read once
            return
        self._started = True
        try:
            for line in self.response.iter_lines():
                text = self._decoder.feed(line)
                if text:
                    yield text
                if self._decoder.done:
                    break
        except httpx.TransportError as exc:
            raise connection_error(exc, self._server) from exc
        finally:
            self.close()

    def until_done(self) -> ChatStream:
        """Read the whole stream (for ``text``, ``usage`` and ``finish_reason``)."""
        for _ in self:
            pass
        return self

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncChatStream(_StreamResult):
    """``async for`` text deltas; the connection closes at the end, on an error, or on ``aclose()``."""

    async def __aiter__(self) -> AsyncIterator[str]:
        if self._started:  # a stream can be read once
            return
        self._started = True
        try:
            async for line in self.response.aiter_lines():
                text = self._decoder.feed(line)
                if text:
                    yield text
                if self._decoder.done:
                    break
        except httpx.TransportError as exc:
            raise connection_error(exc, self._server) from exc
        finally:
            await self.aclose()

    async def until_done(self) -> AsyncChatStream:
        async for _ in self:
            pass
        return self

    async def aclose(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
