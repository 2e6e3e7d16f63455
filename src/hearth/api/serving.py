"""What every generating route does once it has the neutral request: start the work, then send it
as a stream (SSE or NDJSON) or collect it whole and render one body, cancelling the work at
once if the client goes away. The family routes differ only in their renderers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import StreamingResponse

from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.sse import SSE, stream_response
from hearth.gateway.streams import GenerationStream
from hearth.inference.events import ChoiceResult

W = TypeVar("W")
Whole = TypeVar("Whole")
T = TypeVar("T")


async def respond(
    request: Request,
    started: Awaitable[W],
    *,
    streaming: Callable[[W], AsyncIterator[bytes]] | None,
    collect: Callable[[W], Awaitable[Whole]],
    whole: Callable[[W, Whole], T],
    media_type: str = SSE,
) -> T | StreamingResponse:
    """``streaming`` renders the work as stream frames; without it, ``whole`` renders what
    ``collect`` gathered into one body."""
    work = await cancel_on_disconnect(request, started)
    if streaming is not None:
        return stream_response(streaming(work), media_type)
    return whole(work, await cancel_on_disconnect(request, collect(work)))


async def generated(
    request: Request,
    started: Awaitable[GenerationStream],
    *,
    streaming: Callable[[GenerationStream], AsyncIterator[bytes]] | None,
    whole: Callable[[GenerationStream, list[ChoiceResult]], T],
    media_type: str = SSE,
) -> T | StreamingResponse:
    """``respond`` for a generation: its choices are collected whole when not streamed."""
    return await respond(
        request,
        started,
        streaming=streaming,
        collect=GenerationStream.collect,
        whole=whole,
        media_type=media_type,
    )
