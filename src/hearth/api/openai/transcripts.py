"""A transcript in each of OpenAI's ``response_format``s, and its stream events.

``json`` and ``verbose_json`` are objects (the latter with the segments and, when
``timestamp_granularities`` asks, the words); ``text``, ``srt`` and ``vtt`` are plain text.
Streamed, a transcript is ``transcript.text.delta`` events, one per segment as it is decoded,
and one ``transcript.text.done`` with the whole text and the usage.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator
from typing import Any, Literal

from hearth.api.openai.errors import OPENAI
from hearth.api.sse import event_frame, json_frame
from hearth.errors import HearthError
from hearth.gateway.speech import SpeechStream
from hearth.inference.speech import Transcript, TranscriptSegment

Format = Literal["json", "text", "srt", "vtt", "verbose_json"]
FORMATS: tuple[Format, ...] = ("json", "text", "srt", "vtt", "verbose_json")
TEXT_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}


def duration_usage(transcript: Transcript) -> dict[str, Any]:
    """OpenAI bills Whisper by the second, rounded up; the usage says so."""
    return {"type": "duration", "seconds": math.ceil(transcript.info.duration)}


def as_object(transcript: Transcript, verbose: bool, words: bool, segments: bool) -> dict[str, Any]:
    if not verbose:
        return {"text": transcript.text, "usage": duration_usage(transcript)}
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": _language_name(transcript.info.language),
        "duration": round(transcript.info.duration, 3),
        "text": transcript.text,
    }
    if segments:
        body["segments"] = [_segment(s) for s in transcript.segments]
    if words:
        body["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end} for w in transcript.words]
    body["usage"] = duration_usage(transcript)
    return body


def as_text(transcript: Transcript, form: Format) -> str:
    if form == "srt":
        return "".join(
            f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text.strip()}\n\n"
            for i, s in enumerate(transcript.segments, start=1)
        )
    if form == "vtt":
        cues = "".join(
            f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text.strip()}\n\n"
            for s in transcript.segments
        )
        return f"WEBVTT\n\n{cues}"
    return transcript.text + "\n"


async def events(stream: SpeechStream, path: str) -> AsyncIterator[bytes]:
    """``transcript.text.delta`` per segment, then ``transcript.text.done``; a failure mid-way
    is OpenAI's error event, and the stream ends cleanly."""
    texts: list[str] = []
    tokens = 0
    done_seconds = 0.0
    try:
        async for segment in stream.segments:
            delta = segment.text if texts else segment.text.lstrip()
            texts.append(delta)
            tokens += len(segment.tokens)
            done_seconds = segment.end
            yield event_frame("transcript.text.delta", _delta(delta, done_seconds, stream.info.duration))
    except HearthError as exc:  # the usage row has its label already (gateway/speech.py)
        yield json_frame(OPENAI.error_body(exc, path))
        return
    finally:
        await _close(stream.segments)
    usage = {"type": "tokens", "input_tokens": 0, "output_tokens": tokens, "total_tokens": tokens}
    done = {"type": "transcript.text.done", "text": "".join(texts).strip(), "usage": usage}
    yield event_frame("transcript.text.done", done)


def _delta(text: str, end: float, duration: float) -> dict[str, Any]:
    # ``audio_end`` and ``audio_duration`` are Hearth's: how far into the file the transcript
    # has got, for a progress bar (``hearth transcribe``). OpenAI's clients ignore them.
    return {"type": "transcript.text.delta", "delta": text, "audio_end": end, "audio_duration": duration}


async def _close(segments: AsyncIterator[TranscriptSegment]) -> None:
    closer = getattr(segments, "aclose", None)
    if closer is not None:
        await closer()


def _segment(s: TranscriptSegment) -> dict[str, Any]:
    return {
        "id": s.id - 1,
        "seek": s.seek,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }


def _clock(seconds: float, mark: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{mark}{millis:03d}"


@functools.cache
def _language_name(code: str) -> str:
    """verbose_json names the language in English words, as OpenAI's Whisper does ("english")."""
    try:  # Whisper's own table, as transformers ships it (a dependency of sentence-transformers)
        from transformers.models.whisper.tokenization_whisper import LANGUAGES
    except ImportError:  # pragma: no cover
        return code
    return str(LANGUAGES.get(code, code))
