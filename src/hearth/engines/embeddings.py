"""sentence-transformers embeddings, dynamically batched across concurrent requests."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np

from hearth.config import ModelSpec
from hearth.engines.base import EmbeddingEngine, Embeddings, EngineActivity, ModelInfo
from hearth.engines.batching import MicroBatcher
from hearth.engines.import_shims import deferred_sklearn_metrics
from hearth.engines.sources import import_model_package, local_path, pypi_package
from hearth.engines.weights import weights_in
from hearth.errors import ContextLengthExceeded

_Item = tuple[np.ndarray, int]


class SentenceTransformerEngine(EmbeddingEngine):
    _model: Any = None
    _batcher: MicroBatcher[str, _Item] | None = None

    @staticmethod
    def model_dir(spec: ModelSpec) -> Path:
        if pypi_package(spec.source):
            package: Any = import_model_package(spec.source)
            return Path(package.get_model_path())
        return local_path(spec.source, want_dir=True)

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        return weights_in(cls.model_dir(spec))

    def load(self) -> None:
        # Never reach for the Hub: models come from packages or local directories only.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers

        with deferred_sklearn_metrics():
            from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        if self.spec.threads:
            torch.set_num_threads(self.spec.threads)
        self._path = self.model_dir(self.spec)
        self._model = SentenceTransformer(str(self._path), device="cpu", local_files_only=True)
        self._max_tokens = int(self._model.max_seq_length)
        self._batcher = MicroBatcher(
            self._encode_batch,
            name=self.spec.id,
            max_batch=self.spec.batch_size,
            window_s=self.spec.batch_window_ms / 1000,
            max_queue=self.spec.max_queue * self.spec.batch_size,
        )

    @property
    def dimensions(self) -> int:
        getter = getattr(self._model, "get_embedding_dimension", None)
        getter = getter or self._model.get_sentence_embedding_dimension  # older sentence-transformers
        return int(getter())

    def count_tokens(self, texts: list[str]) -> list[int]:
        encoded = self._model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _encode_batch(self, texts: list[str]) -> list[_Item]:
        import torch

        counts = self.count_tokens(texts)
        with torch.inference_mode():
            vectors = self._model.encode(
                texts, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=True
            )
        # Texts past max_seq_length were truncated (only allowed when asked): count what was read.
        counts = [min(n, self._max_tokens) for n in counts]
        return [(np.asarray(v, dtype=np.float32), n) for v, n in zip(vectors, counts, strict=True)]

    async def embed(self, texts: list[str], *, truncate: bool = False) -> Embeddings:
        assert self._batcher is not None, "engine not loaded"
        # A WordPiece token covers at least one character, so only long texts can overflow;
        # count those off the loop before spending a forward pass on them. sentence-transformers
        # truncates to max_seq_length itself, so with ``truncate`` there is nothing to check.
        long_texts = [(i, t) for i, t in enumerate(texts) if len(t) + 2 > self._max_tokens]
        if long_texts and not truncate:
            counts = await asyncio.to_thread(self.count_tokens, [t for _, t in long_texts])
            for (index, _), n in zip(long_texts, counts, strict=True):
                if n > self._max_tokens:
                    raise ContextLengthExceeded(
                        f"input[{index}] has {n} tokens; this model's maximum is {self._max_tokens}",
                        param="input",
                    )
        if len(texts) == 1:  # the common case: no gather, which would wrap it in a task
            results = [await self._batcher.submit(texts[0])]
        else:
            results = await asyncio.gather(*(self._batcher.submit(t) for t in texts))
        return Embeddings(np.stack([v for v, _ in results]), [n for _, n in results])

    def info(self) -> ModelInfo:
        params = sum(p.numel() for p in self._model.parameters())
        size = sum(f.stat().st_size for f in self._path.rglob("*") if f.is_file())
        return ModelInfo(
            id=self.spec.id,
            kind=self.kind,
            backend=self.spec.backend,
            parameters=int(params),
            file_size_bytes=size,
            quantization="float32",
            context_length=self._max_tokens,
            extra={"dimensions": self.dimensions, "max_batch": self.spec.batch_size},
        )

    def activity(self) -> EngineActivity:
        return self._batcher.activity() if self._batcher is not None else EngineActivity()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
