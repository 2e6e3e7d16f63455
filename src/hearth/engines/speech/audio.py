"""An uploaded file made ready for Whisper: decoded, measured, cut at pauses into windows.

Decoding is PyAV's (FFmpeg's decoders, which faster-whisper brings), so every format FFmpeg
reads works: wav, mp3, m4a, ogg, webm, flac. Silero's voice activity detection finds the
speech and ``collect_chunks`` packs it into windows of at most 24 s of Whisper's 30; each
window is one item for the batcher, so a long file is many short jobs that take turns with
other requests' instead of holding the model for its whole length.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from hearth.errors import InvalidRequest

SAMPLE_RATE = 16000
WINDOW_S = 30  # Whisper reads 30 s at a time
# Speech packed into one window: less than 30 s, so the last sentence is followed by silence.
# Decoded with timestamps, Whisper leaves out a sentence it sees running to the window's end
# (in order, it would resume there); in a batch there is no "there", and the sentence was lost.
PACK_S = 24


@dataclass(frozen=True)
class Prepared:
    """One file as the model reads it."""

    duration: float  # seconds of audio in the file
    speech: list[dict[str, int]]  # the speech VAD found: sample offsets in the file
    features: list[np.ndarray]  # one log-mel window (n_mels x 3000) per chunk of speech
    chunks: list[dict[str, Any]]  # each window's offset and duration (VAD-collapsed time)

    @property
    def speech_seconds(self) -> float:
        return sum(s["end"] - s["start"] for s in self.speech) / SAMPLE_RATE


def decode(data: bytes, max_seconds: float) -> np.ndarray:
    """16 kHz mono float32 samples; a file that is not audio, or is too long, is the caller's error."""
    import av
    from faster_whisper.audio import decode_audio

    if not data:
        raise InvalidRequest("the audio file is empty", param="file")
    try:
        samples: np.ndarray = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except (av.error.FFmpegError, ValueError, IndexError, StopIteration) as exc:
        # IndexError/StopIteration: a container with no audio stream (an image, a text file).
        raise InvalidRequest(
            "the file could not be decoded as audio: send wav, mp3, m4a, ogg, webm or flac",
            param="file",
            reason="invalid_audio",
        ) from exc
    if samples.size == 0:
        raise InvalidRequest("the audio file holds no sound", param="file", reason="invalid_audio")
    duration = samples.size / SAMPLE_RATE
    if duration > max_seconds:
        raise InvalidRequest(
            f"the audio is {duration:.0f} seconds long; this server takes at most {max_seconds:.0f}",
            param="file",
            reason="audio_too_long",
        )
    return samples


def prepare(samples: np.ndarray, feature_extractor: Any, vad: bool = True) -> Prepared:
    """Speech found, windows cut, and their log-mel features (the CPU work before the model)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    duration = samples.size / SAMPLE_RATE
    if vad:
        options = VadOptions(max_speech_duration_s=PACK_S, min_silence_duration_ms=160)
        speech: list[dict[str, int]] = get_speech_timestamps(samples, options)
    else:
        speech = [{"start": 0, "end": int(samples.size)}]
    if not speech:
        return Prepared(duration, [], [], [])
    pieces, chunks = collect_chunks(samples, speech, max_duration=PACK_S)
    features = [pad_or_trim(feature_extractor(piece)[..., :-1]) for piece in pieces]
    return Prepared(duration, speech, features, chunks)
