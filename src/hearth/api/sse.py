"""Server-sent events: ``data: {json}`` frames, an error frame on failure, and ``data: [DONE]``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from hearth.errors import HearthError

log = logging.getLogger("hearth.api")

DONE = b"data: [DONE]\n\n"


def frame(model: BaseModel) -> bytes:
    return b"data: " + model.model_dump_json(exclude_none=False).encode() + b"\n\n"


def error_frame(error: HearthError) -> bytes:
    return b"data: " + json.dumps(error.to_dict()).encode() + b"\n\n"


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        # X-Accel-Buffering stops nginx-style proxies from buffering the stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
