"""Stream encodings every family needs: SSE (data-only or with event names) and NDJSON.

``guarded`` runs a stream body so that a failure mid-way becomes the family's own error frame
and the stream still ends cleanly; however it ends (done, failed, or the client gone) the
generation stream is closed, which cancels generation at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from hearth.errors import HearthError, as_hearth_error
from hearth.gateway.streams import GenerationStream

DONE = b"data: [DONE]\n\n"
# X-Accel-Buffering stops nginx-style proxies from buffering the stream.
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(model: BaseModel, exclude: set[str] | None = None) -> bytes:
    return b"data: " + model.model_dump_json(exclude=exclude).encode() + b"\n\n"


def json_frame(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def event_frame(event: str, payload: object) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


def ndjson_line(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


def stream_response(body: AsyncIterator[bytes], media_type: str = SSE) -> StreamingResponse:
    return StreamingResponse(body, media_type=media_type, headers=_STREAM_HEADERS)


async def guarded(
    body: AsyncIterator[bytes],
    stream: GenerationStream,
    error_frame: Callable[[HearthError], bytes],
    end: bytes = b"",
) -> AsyncIterator[bytes]:
    try:
        async for data in body:
            yield data
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        yield error_frame(as_hearth_error(exc))
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
    if end:
        yield end
