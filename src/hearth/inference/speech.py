"""Speech as the neutral layer says it: a request for a transcript (or an English translation)
of one audio file, and the transcript's timed segments as the model writes them; and text to
speech, a request to read text aloud.

The API families render these (OpenAI's json, text, srt, vtt, verbose_json and its stream
events; OIP's text tensor); the engine fills them in, chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, slots=True)
class TranscribeRequest:
    model: str | None  # None: the first speech-to-text model configured
    audio: bytes  # a whole file in any format the decoder reads (wav, mp3, m4a, ogg, webm, flac)
    task: Task = "transcribe"
    language: str | None = None  # ISO-639-1; None: detected from the first 30 s
    prompt: str | None = None  # words and spelling to lean towards (Whisper's initial prompt)
    temperature: float = 0.0
    word_timestamps: bool = False
    timestamps: bool = True  # segment timing (srt, vtt, verbose_json); plain text decodes without


@dataclass(frozen=True, slots=True)
class TranscriptWord:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class TranscriptSegment:
    id: int
    start: float  # seconds from the start of the file
    end: float
    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    temperature: float
    seek: int = 0
    words: tuple[TranscriptWord, ...] = ()


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What is known of the file before the model runs: decoded, measured, its language."""

    duration: float  # seconds of audio
    language: str  # ISO-639-1, given or detected
    language_probability: float
    speech_seconds: float  # what voice activity detection kept


@dataclass(slots=True)
class Transcript:
    """A whole transcript, gathered from its segments."""

    model: str
    task: Task
    info: AudioInfo
    segments: list[TranscriptSegment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def tokens(self) -> int:
        return sum(len(s.tokens) for s in self.segments)

    @property
    def words(self) -> list[TranscriptWord]:
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True, slots=True)
class SpeakRequest:
    model: str | None  # None: the first text-to-speech model configured
    text: str
    voice: str | None = None  # None: the model's own
    speed: float = 1.0  # 0.25 to 4: faster speech is shorter audio


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """Speech as it is synthesised: 16-bit mono samples, one piece per sentence."""

    sample_rate: int
    pieces: AsyncIterator[bytes]
