"""Speech through the gateway, both ways. Speech to text: the model resolved under the caller's key and scope
(rollouts and fallbacks included), the file decoded by the engine, and the call metered as it
goes: the audio's seconds once decoded, the transcript's tokens as segments come, so the usage
row is right whether the answer is streamed, collected or cut short. Text to speech: the
input's characters, and the seconds of audio made as they are sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from hearth.config import ModelKind
from hearth.engines.base import SpeechEngine, SynthesisEngine
from hearth.engines.fair_queue import Ticket, admitted_as
from hearth.errors import HearthError
from hearth.gateway.call import Call
from hearth.gateway.fallbacks import with_fallbacks
from hearth.gateway.priority import ticket_for
from hearth.gateway.resolver import Resolver
from hearth.inference.speech import (
    AudioInfo,
    SpeakRequest,
    SpeechAudio,
    TranscribeRequest,
    Transcript,
    TranscriptSegment,
)


@dataclass
class SpeechStream:
    """A transcript under way: the model that writes it, the file's facts, its segments."""

    model: str
    info: AudioInfo
    segments: AsyncIterator[TranscriptSegment]
    task: str

    async def collect(self) -> Transcript:
        transcript = Transcript(
            self.model, "translate" if self.task == "translate" else "transcribe", self.info
        )
        async for segment in self.segments:
            transcript.segments.append(segment)
        return transcript


class Speech:
    """What the audio routes ask for, over the resolver (the routes' own dependency)."""

    def __init__(self, resolver: Resolver, fair_admission: bool) -> None:
        self._resolver, self._fair = resolver, fair_admission

    async def transcribe(self, call: Call, request: TranscribeRequest) -> SpeechStream:
        """A transcript (or English translation) of one audio file, its segments as they come."""
        name = request.model or self._resolver.default_model(ModelKind.SPEECH_TO_TEXT)
        return await transcribe(self._resolver, call, name, request, self._ticket(call))

    async def speak(self, call: Call, request: SpeakRequest) -> tuple[str, SpeechAudio]:
        """Text read aloud, sentence by sentence, and the model that reads it."""
        name = request.model or self._resolver.default_model(ModelKind.TEXT_TO_SPEECH)
        return await speak(self._resolver, call, name, request, self._ticket(call))

    def _ticket(self, call: Call) -> Ticket | None:
        return ticket_for(call) if self._fair else None


async def transcribe(
    resolver: Resolver, call: Call, name: str, request: TranscribeRequest, ticket: Ticket | None
) -> SpeechStream:
    async def attempt(model: str, fallback: bool) -> SpeechStream:
        engine = await resolver.acquire(call, model, SpeechEngine, fallback=fallback)
        with admitted_as(ticket):
            started = await engine.transcribe(request)
        call.metering.audio_seconds = started.info.duration
        return SpeechStream(
            engine.spec.id, started.info, _metered(call, started.segments, ticket), request.task
        )

    return await with_fallbacks(resolver, call, name, attempt)


async def _metered(
    call: Call, segments: AsyncIterator[TranscriptSegment], ticket: Ticket | None
) -> AsyncIterator[TranscriptSegment]:
    # The engine queues each window under the ticket current when it is submitted: the
    # segments are pulled from the route's stream, so the call's ticket is set around each pull.
    while True:
        with admitted_as(ticket):
            try:
                segment = await anext(segments)
            except StopAsyncIteration:
                return
            except HearthError as exc:  # after the answer began: the row says why it ended
                call.metering.error_label, call.metering.failed_status = exc.label, exc.status_code
                raise
        call.mark_first_token()
        call.metering.completion_tokens += len(segment.tokens)
        yield segment


async def speak(
    resolver: Resolver, call: Call, name: str, request: SpeakRequest, ticket: Ticket | None
) -> tuple[str, SpeechAudio]:
    """Text read aloud: the model that reads it, and its audio as each sentence is ready."""

    async def attempt(model: str, fallback: bool) -> tuple[str, SpeechAudio]:
        engine = await resolver.acquire(call, model, SynthesisEngine, fallback=fallback)
        with admitted_as(ticket):
            audio = await engine.synthesize(request)
        call.metering.characters = len(request.text)
        return engine.spec.id, SpeechAudio(audio.sample_rate, _spoken(call, audio))

    return await with_fallbacks(resolver, call, name, attempt)


async def _spoken(call: Call, audio: SpeechAudio) -> AsyncIterator[bytes]:
    try:
        async for piece in audio.pieces:
            call.mark_first_token()
            call.metering.audio_seconds += len(piece) / 2 / audio.sample_rate
            yield piece
    except HearthError as exc:
        call.metering.error_label, call.metering.failed_status = exc.label, exc.status_code
        raise
