"""A sentence-transformers CrossEncoder reranker, batched across concurrent requests.

A cross-encoder reads the query and one document together and scores them: slower than
comparing embeddings, and better at telling the relevant document from the merely similar. The
model runs where ``ModelHost`` puts it (the model worker process by default), as the
sentence-transformers embedding models do; pairs from concurrent requests share forward passes
through the micro-batcher, queued fairly by key.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hearth.config import ModelSpec
from hearth.engines.base import EngineActivity, ModelInfo, PairScores, RerankEngine
from hearth.engines.batching import MicroBatcher
from hearth.engines.embeddings import (
    SentenceTransformerModel,
    host_sentence_transformers,
    sentence_transformers_dir,
)
from hearth.engines.weights import weights_in
from hearth.engines.worker import ModelHost
from hearth.errors import NotReady

_Pair = tuple[str, str]
_Scored = tuple[float, int]


class CrossEncoderModel:
    """The model itself, where it runs (the worker process by default, see engines.worker)."""

    prepare = staticmethod(SentenceTransformerModel.prepare)

    def __init__(self, path: str, threads: int | None) -> None:
        self.prepare()
        import torch
        from sentence_transformers import CrossEncoder

        if threads:
            torch.set_num_threads(threads)
        self._model: Any = CrossEncoder(path, device="cpu", local_files_only=True)
        self._max_tokens = int(self._model.max_length or self._model.tokenizer.model_max_length or 512)

    def describe(self) -> dict[str, Any]:
        return {
            "max_tokens": self._max_tokens,
            "parameters": int(sum(p.numel() for p in self._model.model.parameters())),
        }

    def score(self, pairs: list[_Pair]) -> list[_Scored]:
        """Each pair's relevance (the model's own activation: a sigmoid for one-label models)
        and the tokens it was read as (truncated to the model's window)."""
        import torch

        lengths = self._model.tokenizer(
            [q for q, _ in pairs], [d for _, d in pairs], truncation=True, max_length=self._max_tokens
        )["input_ids"]
        with torch.inference_mode():
            scores = self._model.predict(
                pairs, batch_size=len(pairs), convert_to_numpy=True, show_progress_bar=False
            )
        return [
            (float(s), len(ids)) for s, ids in zip(scores.reshape(len(pairs), -1)[:, 0], lengths, strict=True)
        ]


_MODEL = f"{__name__}:CrossEncoderModel"


class CrossEncoderEngine(RerankEngine):
    worker_model = _MODEL
    _host: ModelHost | None = None
    _batcher: MicroBatcher[_Pair, _Scored] | None = None

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        return weights_in(sentence_transformers_dir(spec))

    def load(self) -> None:
        self._path, self._host = host_sentence_transformers(self.spec, self.context, _MODEL)
        self._max_tokens = int(self._host.describe["max_tokens"])
        spec = self.spec
        self._batcher = MicroBatcher.for_model(
            self._score_batch, spec, self.context.compute, max_queue=spec.max_queue * spec.batch_size
        )

    def _loaded(self) -> ModelHost:
        if self._host is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        return self._host

    def _score_batch(self, pairs: list[_Pair]) -> list[_Scored]:
        scored: list[_Scored] = self._loaded().call("score", pairs)
        return scored

    async def score_pairs(self, pairs: list[tuple[str, str]]) -> PairScores:
        if self._batcher is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        results = await asyncio.gather(*(self._batcher.submit(p) for p in pairs))
        return PairScores([s for s, _ in results], [n for _, n in results])

    def info(self) -> ModelInfo:
        size = sum(f.stat().st_size for f in self._path.rglob("*") if f.is_file())
        return ModelInfo(
            id=self.spec.id,
            kind=self.kind,
            backend=self.spec.backend,
            parameters=int(self._loaded().describe["parameters"]),
            file_size_bytes=size,
            quantization="float32",
            context_length=self._max_tokens,
            extra={"max_batch": self.spec.batch_size},
        )

    def activity(self) -> EngineActivity:
        return self._batcher.activity() if self._batcher is not None else EngineActivity()

    def failure(self) -> str | None:
        return self._host.failure if self._host is not None else None

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        if self._host is not None:
            self._host.close()
            self._host = None
