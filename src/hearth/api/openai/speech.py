"""OpenAI's ``/v1/audio/speech``: text in, spoken audio out in ``response_format`` (mp3 by
default, as OpenAI's), sent sentence by sentence as it is synthesised. ``stream_format: "sse"``
sends the audio as base64 ``speech.audio.delta`` events and a ``speech.audio.done`` with the
usage, as OpenAI's newer models do."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from hearth.api.audio_out import FORMATS, MEDIA_TYPES, STREAMED, Encoder, Format
from hearth.api.deps import REQUIRE_KEY, CallDep, SpeechDep
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.openai.errors import OPENAI
from hearth.api.sse import SSE, event_frame, json_frame, stream_response
from hearth.errors import HearthError
from hearth.gateway.call import Call
from hearth.inference.speech import SpeakRequest, SpeechAudio

router = APIRouter(prefix="/v1/audio", tags=["OpenAI"], dependencies=[REQUIRE_KEY])


class Voice(BaseModel):
    id: str


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # instructions and newer fields: accepted, unused

    model: str | None = None
    input: str = Field(max_length=4096)
    voice: str | Voice | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"


async def _audio(audio: SpeechAudio, encoder: Encoder, path: str) -> AsyncIterator[bytes]:
    try:
        async for piece in audio.pieces:
            if encoded := encoder.feed(piece):
                yield encoded
        if tail := encoder.finish():
            yield tail
    except HearthError:  # audio already went out: there is no error shape to send; the row says why
        return
    finally:
        await _close(audio.pieces)


async def _events(audio: SpeechAudio, encoder: Encoder, call: Call, path: str) -> AsyncIterator[bytes]:
    try:
        async for piece in audio.pieces:
            if encoded := encoder.feed(piece):
                yield event_frame("speech.audio.delta", _delta(encoded))
        if tail := encoder.finish():
            yield event_frame("speech.audio.delta", _delta(tail))
    except HearthError as exc:
        yield json_frame(OPENAI.error_body(exc, path))
        return
    finally:
        await _close(audio.pieces)
    characters = call.metering.characters
    usage = {"input_tokens": characters, "output_tokens": 0, "total_tokens": characters}
    yield event_frame("speech.audio.done", {"type": "speech.audio.done", "usage": usage})


def _delta(data: bytes) -> dict[str, Any]:
    return {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}


async def _close(pieces: AsyncIterator[bytes]) -> None:
    closer = getattr(pieces, "aclose", None)
    if closer is not None:
        await closer()


@router.post(
    "/speech",
    summary="Read text aloud",
    response_model=None,
    responses={200: {"content": {**{t: {} for t in MEDIA_TYPES.values()}, SSE: {}}}},
)
async def speech(body: SpeechBody, request: Request, voices: SpeechDep, call: CallDep) -> StreamingResponse:
    voice = body.voice.id if isinstance(body.voice, Voice) else body.voice
    neutral = SpeakRequest(body.model or None, body.input, voice, body.speed)
    _, audio = await cancel_on_disconnect(request, voices.speak(call, neutral))
    form: Format = body.response_format
    assert form in FORMATS
    encoder = Encoder(form, audio.sample_rate)
    path = request.url.path
    if body.stream_format == "sse":
        return stream_response(_events(audio, encoder, call, path))
    headers = {"X-Hearth-Sample-Rate": str(audio.sample_rate)}
    if form not in STREAMED:
        headers["Content-Disposition"] = f'inline; filename="speech.{form}"'
    return StreamingResponse(_audio(audio, encoder, path), media_type=MEDIA_TYPES[form], headers=headers)
