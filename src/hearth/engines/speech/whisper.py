"""Whisper on faster-whisper (CTranslate2, int8 on CPU), batched across requests.

Each request's file is decoded and cut at pauses into windows of at most 30 s off the model's
thread (``audio.prepare``). Every window is one item for the micro-batcher, so windows of
requests that arrive together, and the windows of one long file, share the encoder and the
decoder's beam search in one batch, queued fairly by key. A request keeps at most
``batch_size`` windows queued at a time: a one-hour file takes turns with a short one instead of
holding the model for an hour. Windows batch together when they share a task, a language and
decoding options (one tokenizer and one prompt); the rest wait for the next batch.

The model runs in the server's process: CTranslate2 releases the interpreter lock while it
computes, and the audio never crosses a process boundary.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hearth.config import ModelSpec
from hearth.cpu_topology import physical_cores
from hearth.engines.base import EngineActivity, ModelFootprint, ModelInfo, SpeechEngine, Transcription
from hearth.engines.batching import MicroBatcher
from hearth.engines.speech import audio
from hearth.engines.speech.model_dir import model_dir, package_names, shipped_files, target_dir
from hearth.engines.weights import weights_in
from hearth.errors import InvalidRequest, NotReady
from hearth.inference.speech import AudioInfo, TranscribeRequest, TranscriptSegment, TranscriptWord

# Decoding options a batch shares: task, language, temperature, prompt, word and segment timing.
_Key = tuple[str, str, float, str | None, bool, bool]


@dataclass(frozen=True)
class _Window:
    key: _Key
    features: np.ndarray
    chunk: dict[str, Any]


@dataclass(frozen=True)
class _Detect:
    features: np.ndarray


_Job = _Window | _Detect
_Done = list[dict[str, Any]] | tuple[str, float]


class WhisperEngine(SpeechEngine):
    _model: Any = None
    _batcher: MicroBatcher[_Job, _Done] | None = None

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        """The joined model.bin once assembled, else the packages' parts (nothing is written)."""
        names = package_names(spec.source)
        if names is None:
            return weights_in(Path(spec.source).expanduser())
        joined = target_dir(names, data_dir) / "model.bin"
        return [joined] if joined.is_file() else shipped_files(names)[0]

    @classmethod
    def footprint(cls, spec: ModelSpec, data_dir: Path) -> ModelFootprint:
        """float16 weights on disk, converted to int8 at load: measured +232 MiB resident for
        Whisper base's 138 MiB (docs/benchmarks.md), about 1.7 times the file."""
        weights = cls.weight_files(spec, data_dir)
        size = sum(w.stat().st_size for w in weights)
        compute = str(spec.options.get("compute_type", "int8"))
        return ModelFootprint(
            spec.id,
            spec.kind.value,
            spec.backend,
            file_bytes=size,
            quantization=compute,
            memory_bytes=int(size * 1.7),
            note=f"CTranslate2, {compute} at load; loaded on first use"
            if spec.load == "first-use"
            else f"CTranslate2, {compute}",
            files=[str(w) for w in weights],
        )

    @staticmethod
    def _directory(spec: ModelSpec, data_dir: Path) -> Path:
        sha = spec.options.get("sha256")
        return model_dir(spec.source, data_dir, str(sha) if sha else None)

    def load(self) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self._path = self._directory(self.spec, self.data_dir)
        compute_type = str(self.spec.options.get("compute_type", "int8"))
        self._model = WhisperModel(
            str(self._path),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=self.spec.threads or physical_cores(),
            local_files_only=True,
        )
        self._pipeline = BatchedInferencePipeline(self._model)
        self._beam_size = int(self.spec.options.get("beam_size", 5))
        self._max_seconds = float(self.spec.options.get("max_audio_seconds", 4 * 3600))
        self._tokenizers: dict[tuple[str, str], Any] = {}
        spec = self.spec
        self._batcher = MicroBatcher.for_model(
            self._run_batch, spec, self.context.compute, max_queue=spec.max_queue * spec.batch_size
        )

    @property
    def multilingual(self) -> bool:
        return bool(self._loaded().model.is_multilingual)

    def _loaded(self) -> Any:
        if self._model is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        return self._model

    # -- the request's side (event loop and a prep thread) ---------------------------------------

    async def transcribe(self, request: TranscribeRequest) -> Transcription:
        model, batcher = self._loaded(), self._batcher
        assert batcher is not None
        if request.language is not None and request.language not in model.supported_languages:
            raise InvalidRequest(
                f"unknown language {request.language!r}: give an ISO-639-1 code", param="language"
            )
        samples = await asyncio.to_thread(audio.decode, request.audio, self._max_seconds)
        prepared = await asyncio.to_thread(audio.prepare, samples, model.feature_extractor)
        language, probability = request.language or "en", 1.0
        if request.language is None and model.model.is_multilingual and prepared.features:
            detected = await batcher.submit(_Detect(prepared.features[0]))
            assert isinstance(detected, tuple)
            language, probability = detected
        info = AudioInfo(prepared.duration, language, probability, prepared.speech_seconds)
        timestamps = request.word_timestamps or request.timestamps
        key: _Key = (
            request.task,
            language,
            request.temperature,
            request.prompt,
            request.word_timestamps,
            timestamps,
        )
        return Transcription(info, self._segments(key, prepared, batcher))

    async def _segments(
        self, key: _Key, prepared: audio.Prepared, batcher: MicroBatcher[_Job, _Done]
    ) -> AsyncIterator[TranscriptSegment]:
        from faster_whisper.transcribe import restore_speech_timestamps

        window = max(1, self.spec.batch_size)
        jobs = [_Window(key, f, c) for f, c in zip(prepared.features, prepared.chunks, strict=True)]
        queued: list[asyncio.Task[_Done]] = []
        number = 0
        try:
            for index in range(len(jobs)):
                while len(queued) < window and index + len(queued) < len(jobs):
                    queued.append(asyncio.ensure_future(batcher.submit(jobs[index + len(queued)])))
                done = await queued.pop(0)
                assert isinstance(done, list)
                for raw in restore_speech_timestamps(
                    _as_segments(done, key), prepared.speech, audio.SAMPLE_RATE
                ):
                    number += 1
                    yield _neutral(raw, number)
        finally:
            for task in queued:
                task.cancel()

    # -- the model's side (the batcher's one thread) ---------------------------------------------

    def _run_batch(self, jobs: list[_Job]) -> Sequence[_Done]:
        results: list[_Done | None] = [None] * len(jobs)
        detects = [i for i, j in enumerate(jobs) if isinstance(j, _Detect)]
        if detects:
            for i, found in zip(detects, self._detect([jobs[i].features for i in detects]), strict=True):
                results[i] = found
        groups: dict[_Key, list[int]] = {}
        for i, job in enumerate(jobs):
            if isinstance(job, _Window):
                groups.setdefault(job.key, []).append(i)
        for key, members in groups.items():
            windows = [jobs[i] for i in members]
            assert all(isinstance(w, _Window) for w in windows)
            outputs = self._decode(key, windows)  # type: ignore[arg-type]
            for i, output in zip(members, outputs, strict=True):
                results[i] = output
        return [r for r in results if r is not None]

    def _detect(self, features: list[np.ndarray]) -> list[tuple[str, float]]:
        model = self._loaded()
        encoded = model.encode(np.stack(features))
        found = []
        for ranked in model.model.detect_language(encoded):
            token, probability = ranked[0]
            found.append((token[2:-2], float(probability)))
        return found

    def _tokenizer(self, task: str, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        model = self._loaded()
        tokenizer = self._tokenizers.get((task, language))
        if tokenizer is None:
            tokenizer = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task=task, language=language
            )
            self._tokenizers[(task, language)] = tokenizer
        return tokenizer

    def _decode(self, key: _Key, windows: list[_Window]) -> list[list[dict[str, Any]]]:
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        task, language, temperature, prompt, words, timestamps = key
        tokenizer = self._tokenizer(task, language)
        options = TranscriptionOptions(
            beam_size=self._beam_size if temperature == 0 else 1,
            best_of=5,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            log_prob_threshold=-1.0,
            no_speech_threshold=0.6,
            compression_ratio_threshold=2.4,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=[temperature],
            initial_prompt=prompt,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            without_timestamps=not timestamps,
            max_initial_timestamp=0.0,
            word_timestamps=words,
            prepend_punctuations=_defaults()["prepend_punctuations"],
            append_punctuations=_defaults()["append_punctuations"],
            multilingual=False,
            max_new_tokens=None,
            clip_timestamps=[],
            hallucination_silence_threshold=None,
            hotwords=None,
        )
        # Word timing is bounded by the last word the pipeline saw; windows of other files
        # in the same batch must not move it, so every batch starts from zero.
        self._pipeline.last_speech_timestamp = 0.0
        features = np.stack([w.features for w in windows])
        outputs: list[list[dict[str, Any]]] = self._pipeline.forward(
            features, tokenizer, [w.chunk for w in windows], options
        )
        return outputs

    # -- life cycle ------------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        model = self._loaded()
        size = sum(f.stat().st_size for f in self._path.iterdir() if f.is_file())
        return ModelInfo(
            id=self.spec.id,
            kind=self.kind,
            backend=self.spec.backend,
            file_size_bytes=size,
            quantization=str(self.spec.options.get("compute_type", "int8")),
            extra={
                "max_batch": self.spec.batch_size,
                "multilingual": bool(model.model.is_multilingual),
                "max_audio_seconds": self._max_seconds,
            },
        )

    def activity(self) -> EngineActivity:
        return self._batcher.activity() if self._batcher is not None else EngineActivity()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        self._model = None


@functools.cache
def _defaults() -> dict[str, Any]:
    """faster-whisper's own defaults for what Hearth does not set (the punctuation words keep)."""
    from faster_whisper import BatchedInferencePipeline

    parameters = inspect.signature(BatchedInferencePipeline.transcribe).parameters
    return {name: p.default for name, p in parameters.items()}


def _as_segments(done: list[dict[str, Any]], key: _Key) -> list[Any]:
    """The pipeline's dicts as faster-whisper ``Segment`` objects, which its time map takes."""
    from faster_whisper.transcribe import Segment, Word

    words = key[4]
    return [
        Segment(
            id=0,
            seek=raw["seek"],
            start=round(raw["start"], 3),
            end=round(raw["end"], 3),
            text=raw["text"],
            tokens=raw["tokens"],
            avg_logprob=raw["avg_logprob"],
            compression_ratio=raw["compression_ratio"],
            no_speech_prob=raw["no_speech_prob"],
            words=[Word(**w) for w in raw["words"]] if words else None,
            temperature=key[2],
        )
        for raw in done
    ]


def _neutral(segment: Any, number: int) -> TranscriptSegment:
    words = tuple(
        TranscriptWord(w.word, round(w.start, 3), round(w.end, 3), round(w.probability, 4))
        for w in segment.words or ()
    )
    return TranscriptSegment(
        id=number,
        start=round(segment.start, 3),
        end=round(segment.end, 3),
        text=segment.text,
        tokens=tuple(segment.tokens),
        avg_logprob=float(segment.avg_logprob),
        compression_ratio=float(segment.compression_ratio),
        no_speech_prob=float(segment.no_speech_prob),
        temperature=float(segment.temperature or 0.0),
        seek=int(segment.seek),
        words=words,
    )
