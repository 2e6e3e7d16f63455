"""Real speech for the speech-to-text tests: sentences (``bench.speech_samples``) spoken by
Debian's ``espeak-ng``, written as WAV and re-encoded by PyAV (FFmpeg) into the other formats
clients upload, and the word error rate of a transcript against what was said."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import av
import jiwer

# What each container is encoded with: PyAV's wheels bring these encoders.
CODECS = {"mp3": "mp3", "flac": "flac", "ogg": "libopus", "webm": "libopus", "m4a": "aac", "wav": "pcm_s16le"}
_FORMATS = {"m4a": "ipod", "ogg": "ogg", "webm": "webm", "mp3": "mp3", "flac": "flac", "wav": "wav"}


def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise RuntimeError("espeak-ng is not installed: `make system-deps` installs it (Debian's espeak-ng)")
    return found


def spoken(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """``text`` spoken into a WAV file (22.05 kHz mono)."""
    subprocess.run([espeak(), "-v", voice, "-s", str(words_per_minute), "-w", str(path), text], check=True)
    return path


def silence_then(path: Path, speech: Path, seconds: float) -> Path:
    """``seconds`` of silence, then ``speech``: a file whose speech does not start at zero."""
    with av.open(str(speech)) as source:
        stream = source.streams.audio[0]
        rate = stream.rate
        frames = [f.to_ndarray() for f in source.decode(stream)]
    import numpy as np

    samples = np.concatenate([np.zeros((1, int(rate * seconds)), dtype=frames[0].dtype), *frames], axis=1)
    return _write(path, samples, rate, "wav")


def encoded(wav: Path, suffix: str) -> Path:
    """The WAV file re-encoded as ``suffix`` (mp3, m4a, ogg, webm, flac)."""
    with av.open(str(wav)) as source:
        stream = source.streams.audio[0]
        rate = stream.rate
        import numpy as np

        samples = np.concatenate([f.to_ndarray() for f in source.decode(stream)], axis=1)
    return _write(wav.with_suffix(f".{suffix}"), samples, rate, suffix)


def _write(path: Path, samples: object, rate: int, suffix: str) -> Path:
    import numpy as np

    pcm = np.asarray(samples)
    if pcm.dtype != np.int16:
        pcm = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
    codec = CODECS[suffix]
    out_rate = 48000 if codec == "libopus" else rate  # opus takes 48 kHz only
    with av.open(str(path), "w", format=_FORMATS[suffix]) as sink:
        stream = sink.add_stream(codec, rate=out_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=out_rate)
        for piece in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(piece):
                sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return path


def normalised(text: str) -> str:
    text = (
        text.lower().replace("colour", "color").replace("favourite", "favorite").replace("metres", "meters")
    )
    text = re.sub(r"\b200\b", "two hundred", text)
    text = re.sub(r"\b4\b", "four", text)
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text).split())


def word_error_rate(said: list[str], heard: list[str]) -> float:
    """Word error rate over the set (substitutions, deletions and insertions per word said),
    after lower-casing, dropping punctuation and spelling British and American alike."""
    return float(jiwer.wer([normalised(s) for s in said], [normalised(h) for h in heard]))
