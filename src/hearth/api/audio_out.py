"""Speech audio in the formats OpenAI's ``/v1/audio/speech`` answers in, encoded as it comes.

``pcm`` is the raw 16-bit little-endian mono samples; ``mp3``, ``opus`` (in Ogg), ``aac``
(ADTS) and ``flac`` are encoded with PyAV's bundled FFmpeg encoders piece by piece, so each
sentence goes out as soon as it is synthesised. ``wav`` carries the whole length in its header
and goes out once the last sentence is read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Format = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
FORMATS: tuple[Format, ...] = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MEDIA_TYPES: dict[Format, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
STREAMED: frozenset[Format] = frozenset({"mp3", "opus", "aac", "flac", "pcm"})


@dataclass(frozen=True)
class _Codec:
    container: str
    codec: str
    rate: int | None  # what the encoder needs, when not the voice's own rate


_CODECS: dict[Format, _Codec] = {
    "mp3": _Codec("mp3", "mp3", None),
    "opus": _Codec("ogg", "libopus", 48000),
    "aac": _Codec("adts", "aac", None),
    "flac": _Codec("flac", "flac", None),
}


class _Sink:
    """Where the muxer writes: bytes taken out after each piece. Not seekable, so muxers write
    a stream (no header to go back and fix)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class Encoder:
    """16-bit mono PCM in, the format's bytes out: ``feed`` each piece, then ``finish``."""

    def __init__(self, form: Format, sample_rate: int) -> None:
        self.form = form
        self.rate = sample_rate
        self._whole: list[bytes] = []
        self._container: Any = None
        if form in _CODECS:
            import av

            codec = _CODECS[form]
            self._sink = _Sink()
            self._container = av.open(self._sink, "w", format=codec.container)
            out_rate = codec.rate or sample_rate
            self._stream = self._container.add_stream(codec.codec, rate=out_rate, layout="mono")
            self._resampler = av.AudioResampler(format=self._stream.format.name, layout="mono", rate=out_rate)

    def feed(self, pcm: bytes) -> bytes:
        if self.form == "pcm":
            return pcm
        if self.form == "wav":
            self._whole.append(pcm)
            return b""
        return self._encode(pcm)

    def finish(self) -> bytes:
        if self.form == "pcm":
            return b""
        if self.form == "wav":
            data = b"".join(self._whole)
            return _wav_header(len(data), self.rate) + data
        tail = self._encode(None)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return tail + self._sink.take()

    def _encode(self, pcm: bytes | None) -> bytes:
        import av

        if pcm is None:
            frames = self._resampler.resample(None)
        else:
            samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = self.rate
            frames = self._resampler.resample(frame)
        for piece in frames:
            for packet in self._stream.encode(piece):
                self._container.mux(packet)
        return self._sink.take()


def _wav_header(data_bytes: int, rate: int) -> bytes:
    """A 16-bit mono PCM RIFF header for ``data_bytes`` of samples."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )
