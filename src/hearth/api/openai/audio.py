"""OpenAI's ``/v1/audio/transcriptions`` and ``/v1/audio/translations``: a multipart upload in,
a transcript out in the ``response_format`` asked for, or streamed as ``transcript.text.delta``
events. Translations are to English, as OpenAI's are, and take no ``language``.

The fields are OpenAI's, as its SDKs send them (``timestamp_granularities[]`` repeated); a
file over ``HEARTH_MAX_AUDIO_BYTES`` (25 MB, OpenAI's limit) is a 413, one that is not audio a
400, both in OpenAI's error shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response
from starlette.responses import StreamingResponse

from hearth.api.deps import REQUIRE_KEY, CallDep, SettingsDep, SpeechDep
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.openai import transcripts
from hearth.api.sse import stream_response
from hearth.errors import InvalidRequest, PayloadTooLarge
from hearth.inference.speech import Task, TranscribeRequest

router = APIRouter(prefix="/v1/audio", tags=["OpenAI"], dependencies=[REQUIRE_KEY])

_Text = Annotated[str | None, Form()]


async def _read(file: UploadFile, limit: int) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"the audio file is over {limit // 2**20} MB, the largest this server takes", param="file"
        )
    return data


def _format(value: str | None) -> transcripts.Format:
    form = value or "json"
    for known in transcripts.FORMATS:
        if form == known:
            return known
    raise InvalidRequest(
        f"response_format must be one of {', '.join(transcripts.FORMATS)}", param="response_format"
    )


def _temperature(value: str | None) -> float:
    try:
        temperature = float(value) if value not in (None, "") else 0.0
    except ValueError:
        raise InvalidRequest("temperature must be a number", param="temperature") from None
    if not 0 <= temperature <= 1:
        raise InvalidRequest("temperature must be between 0 and 1", param="temperature")
    return temperature


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"true", "1", "yes", "on"}


async def _answer(
    request: Request,
    speech: SpeechDep,
    call: CallDep,
    settings: SettingsDep,
    *,
    task: Task,
    file: UploadFile,
    model: str | None,
    language: str | None,
    prompt: str | None,
    response_format: str | None,
    temperature: str | None,
    granularities: list[str],
    stream: bool,
) -> Any:
    form = _format(response_format)
    unknown = sorted(set(granularities) - {"word", "segment"})
    if unknown:
        raise InvalidRequest(
            f"timestamp_granularities may hold 'word' and 'segment', not {unknown}",
            param="timestamp_granularities",
        )
    if granularities and form != "verbose_json":
        raise InvalidRequest(
            "timestamp_granularities needs response_format verbose_json", param="timestamp_granularities"
        )
    if stream and task == "translate":
        raise InvalidRequest("translations are not streamed", param="stream")
    words = "word" in granularities
    audio = await _read(file, settings.max_audio_bytes)
    neutral = TranscribeRequest(
        model=model or None,
        audio=audio,
        task=task,
        language=(language or "").strip().lower() or None,
        prompt=prompt or None,
        temperature=_temperature(temperature),
        word_timestamps=words,
        timestamps=form in ("srt", "vtt", "verbose_json"),
    )
    started = await cancel_on_disconnect(request, speech.transcribe(call, neutral))
    if stream:
        return stream_response(transcripts.events(started, request.url.path))
    transcript = await cancel_on_disconnect(request, started.collect())
    if form in ("json", "verbose_json"):
        segments = form == "verbose_json" and ("segment" in granularities or not granularities)
        return transcripts.as_object(transcript, form == "verbose_json", words, segments)
    return PlainTextResponse(transcripts.as_text(transcript, form), media_type=transcripts.TEXT_TYPES[form])


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/plain": {}, "text/event-stream": {}}}
}


@router.post("/transcriptions", summary="Transcribe audio", responses=_RESPONSES, response_model=None)
async def transcriptions(
    request: Request,
    speech: SpeechDep,
    call: CallDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    model: _Text = None,
    language: _Text = None,
    prompt: _Text = None,
    response_format: _Text = None,
    temperature: _Text = None,
    timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    stream: _Text = None,
) -> Response | StreamingResponse | dict[str, Any]:
    answer: Response | StreamingResponse | dict[str, Any] = await _answer(
        request, speech, call, settings,
        task="transcribe", file=file, model=model, language=language, prompt=prompt,
        response_format=response_format, temperature=temperature,
        granularities=timestamp_granularities or [], stream=_flag(stream),
    )  # fmt: skip
    return answer


@router.post(
    "/translations", summary="Translate audio into English text", responses=_RESPONSES, response_model=None
)
async def translations(
    request: Request,
    speech: SpeechDep,
    call: CallDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    model: _Text = None,
    prompt: _Text = None,
    response_format: _Text = None,
    temperature: _Text = None,
) -> Response | StreamingResponse | dict[str, Any]:
    answer: Response | StreamingResponse | dict[str, Any] = await _answer(
        request, speech, call, settings,
        task="translate", file=file, model=model, language=None, prompt=prompt,
        response_format=response_format, temperature=temperature, granularities=[], stream=False,
    )  # fmt: skip
    return answer
