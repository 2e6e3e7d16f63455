"""sentence-transformers embeddings, dynamically batched across concurrent requests.

The engine (batching, length checks) runs in the server; the model runs where ``ModelHost``
puts it, the model worker process by default.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np

from hearth.config import ModelSpec
from hearth.engines.base import EmbeddingEngine, Embeddings, EngineActivity, ModelInfo
from hearth.engines.batching import MicroBatcher
from hearth.engines.context import EngineContext
from hearth.engines.import_shims import deferred_sklearn_metrics
from hearth.engines.sources import import_model_package, local_path, pypi_package
from hearth.engines.weights import weights_in
from hearth.engines.worker import ModelHost
from hearth.errors import ContextLengthExceeded, NotReady, Subject

_Item = tuple[np.ndarray, int]


class SentenceTransformerModel:
    """The model itself, where it runs (the worker process by default, see engines.worker)."""

    @staticmethod
    def prepare() -> None:
        """Import torch, transformers and sentence-transformers (5 s of CPU here): the start-up's longest step."""
        # Never reach for the Hub: models come from packages or local directories only.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import transformers

        with deferred_sklearn_metrics():
            import sentence_transformers  # noqa: F401

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    def __init__(self, path: str, threads: int | None) -> None:
        self.prepare()
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model: Any = SentenceTransformer(path, device="cpu", local_files_only=True)
        self._max_tokens = int(self._model.max_seq_length or 512)

    def describe(self) -> dict[str, Any]:
        getter = getattr(self._model, "get_embedding_dimension", None)
        getter = getter or self._model.get_sentence_embedding_dimension  # older sentence-transformers
        return {
            "max_tokens": self._max_tokens,
            "dimensions": int(getter()),
            "parameters": int(sum(p.numel() for p in self._model.parameters())),
        }

    def count_tokens(self, texts: list[str]) -> list[int]:
        encoded = self._model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(self, texts: list[str]) -> list[_Item]:
        """Unit vectors, and the tokens each read (texts past max_seq_length were truncated)."""
        import torch

        counts = self.count_tokens(texts)
        with torch.inference_mode():
            vectors = self._model.encode(
                texts, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=True
            )
        counts = [min(n, self._max_tokens) for n in counts]
        return [(np.asarray(v, dtype=np.float32), n) for v, n in zip(vectors, counts, strict=True)]


_MODEL = f"{__name__}:SentenceTransformerModel"


class BatchedEmbeddingEngine(EmbeddingEngine):
    """What every embedding engine shares: the length check and dynamic batching of texts.

    Subclasses load their model, set ``_max_tokens``, call ``_start_batching`` and give
    ``count_tokens`` and ``_encode_batch`` (texts in, unit vectors and tokens read out, truncating
    past ``_max_tokens``), which run off the event loop.
    """

    _batcher: MicroBatcher[str, _Item] | None = None
    _max_tokens: int = 0

    def count_tokens(self, texts: list[str]) -> list[int]:
        raise NotImplementedError

    def _encode_batch(self, texts: list[str]) -> list[_Item]:
        raise NotImplementedError

    def _start_batching(self) -> None:
        spec = self.spec
        self._batcher = MicroBatcher.for_model(
            self._encode_batch, spec, self.context.compute, max_queue=spec.max_queue * spec.batch_size
        )

    async def embed(self, texts: list[str], *, truncate: bool = False) -> Embeddings:
        if self._batcher is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        # A WordPiece token covers at least one character, so only long texts can overflow;
        # count those off the loop before spending a forward pass on them. The encoders truncate
        # to _max_tokens themselves, so with ``truncate`` there is nothing to check.
        long_texts = [(i, t) for i, t in enumerate(texts) if len(t) + 2 > self._max_tokens]
        if long_texts and not truncate:
            counts = await asyncio.to_thread(self.count_tokens, [t for _, t in long_texts])
            for (index, _), n in zip(long_texts, counts, strict=True):
                if n > self._max_tokens:
                    raise ContextLengthExceeded(
                        f"text {index} of {{input}} has {n} tokens; this model's maximum is {self._max_tokens}",
                        subject=Subject.INPUT,
                    )
        if len(texts) == 1:  # the common case: no gather, which would wrap it in a task
            results = [await self._batcher.submit(texts[0])]
        else:
            results = await asyncio.gather(*(self._batcher.submit(t) for t in texts))
        return Embeddings(np.stack([v for v, _ in results]), [n for _, n in results])

    def activity(self) -> EngineActivity:
        return self._batcher.activity() if self._batcher is not None else EngineActivity()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None


def sentence_transformers_dir(spec: ModelSpec) -> Path:
    """The sentence-transformers directory a spec names: a model package's, or a local one."""
    if pypi_package(spec.source):
        package: Any = import_model_package(spec.source)
        return Path(package.get_model_path())
    return local_path(spec.source, want_dir=True)


def host_sentence_transformers(spec: ModelSpec, context: EngineContext, model: str) -> tuple[Path, ModelHost]:
    """A sentence-transformers directory's model, started where ``ModelHost`` puts it."""
    path = sentence_transformers_dir(spec)
    return path, ModelHost(spec.id, model, str(path), spec.threads, mode=context.torch_engines)


class SentenceTransformerEngine(BatchedEmbeddingEngine):
    worker_model = _MODEL
    _host: ModelHost | None = None

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        return weights_in(sentence_transformers_dir(spec))

    def load(self) -> None:
        self._path, self._host = host_sentence_transformers(self.spec, self.context, _MODEL)
        self._max_tokens = int(self._host.describe["max_tokens"])
        self._start_batching()

    @property
    def dimensions(self) -> int:
        return int(self._loaded().describe["dimensions"])

    def _loaded(self) -> ModelHost:
        if self._host is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        return self._host

    def count_tokens(self, texts: list[str]) -> list[int]:
        counts: list[int] = self._loaded().call("count_tokens", texts)
        return counts

    def _encode_batch(self, texts: list[str]) -> list[_Item]:
        items: list[_Item] = self._loaded().call("encode", texts)
        return items

    def info(self) -> ModelInfo:
        params = self._loaded().describe["parameters"]
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

    def failure(self) -> str | None:
        return self._host.failure if self._host is not None else None

    def close(self) -> None:
        super().close()
        if self._host is not None:
            self._host.close()
            self._host = None
