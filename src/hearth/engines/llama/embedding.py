"""BERT sentence embeddings on llama.cpp, in the server's process (see bert_gguf.py for why).

Texts are tokenized by the model directory's own ``tokenizer.json`` through HF ``tokenizers``,
exactly as sentence-transformers does (llama.cpp's WordPiece differs on some accents and CJK),
and the ids go to llama.cpp's encoder, several sequences per ``llama_encode``. llama.cpp pools
each sequence (mean or CLS, as the directory says); the unit vectors are normalised here.

A BERT encoder attends over the whole batch at once with a mask between sequences, so the work
grows with the square of the batch's tokens: batches are cut at ``ENCODE_TOKENS`` tokens, the
fastest of 128, 256 and 512 on a 2-core VM (139 texts/s for batches of 32 twelve-word texts,
against 126 for sentence-transformers on torch).
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from hearth.config import ModelSpec
from hearth.cpu_topology import physical_cores
from hearth.engines.base import ModelInfo
from hearth.engines.context import EngineContext
from hearth.engines.embeddings import BatchedEmbeddingEngine, sentence_transformers_dir
from hearth.engines.llama import native
from hearth.engines.llama.bert_gguf import SentenceBertLayout, converted_gguf
from hearth.engines.llama.threadpool import PoolLease, no_turn
from hearth.engines.weights import weights_in
from hearth.errors import EngineFailure, NotReady

ENCODE_TOKENS = 512
MAX_SEQUENCES = 64  # below llama.cpp's LLAMA_MAX_SEQ
_POOLING = {"mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN, "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS}

_Item = tuple[np.ndarray, int]


class LlamaEmbeddingEngine(BatchedEmbeddingEngine):
    _model: Any = None
    _ctx: Any = None
    _pool: PoolLease | None = None
    _batch: Any = None

    def __init__(self, spec: ModelSpec, context: EngineContext) -> None:
        super().__init__(spec, context)
        self._native_lock = threading.Lock()  # an encode in flight finishes before close frees it

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        return weights_in(sentence_transformers_dir(spec))

    def load(self) -> None:
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        from tokenizers import Tokenizer

        layout = SentenceBertLayout.read(sentence_transformers_dir(self.spec))
        self._layout = layout
        self._path = converted_gguf(layout, self.data_dir)
        native.ensure_backend()
        self._max_tokens = layout.max_seq_length
        self._n_tokens = max(ENCODE_TOKENS, self._max_tokens)
        self._n_seq = max(1, min(self.spec.batch_size, MAX_SEQUENCES))
        with native.captured_log() as lines:
            self._model = llama_cpp.llama_model_load_from_file(
                str(self._path).encode(), llama_cpp.llama_model_default_params()
            )
            if not self._model:
                raise EngineFailure(f"llama.cpp could not load {self._path}: {' '.join(lines[-3:])}")
            threads = self.spec.threads or physical_cores()
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = params.n_batch = params.n_ubatch = self._n_tokens
            params.n_seq_max = self._n_seq
            params.n_threads = params.n_threads_batch = threads
            params.embeddings = True
            params.kv_unified = True  # one pool, not n_ctx split per sequence (an encoder keeps none)
            params.pooling_type = _POOLING[layout.pooling]
            params.no_perf = True
            self._ctx = llama_cpp.llama_init_from_model(self._model, params)
            if not self._ctx:
                raise EngineFailure(f"llama.cpp could not create a context: {' '.join(lines[-3:])}")
        if not native.openmp_compiled():
            # The pool the chat models decode on, taking turns with them (see threadpool.py).
            self._pool = PoolLease.for_context(self._ctx, threads, self.spec.options)
        self._dimensions = int(llama_cpp.llama_model_n_embd(self._model))
        self._batch = llama_cpp.llama_batch_init(self._n_tokens, 0, self._n_seq)
        source = str(layout.directory / "tokenizer.json")
        self._counting = Tokenizer.from_file(source)
        self._counting.no_truncation()
        self._counting.no_padding()
        self._tokenizer = Tokenizer.from_file(source)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self._max_tokens)
        self._encode_batch(["warm up"])  # touch the mmapped weights before the first request
        self._start_batching()

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._counting.encode_batch(texts)]

    def _encode_batch(self, texts: list[str]) -> list[_Item]:
        """Unit vectors and the tokens each read; runs on the batcher's one thread."""
        with self._native_lock:
            if self._ctx is None:
                raise NotReady(f"model {self.spec.id} is not loaded")
            return self._encode_texts(texts)

    def _encode_texts(self, texts: list[str]) -> list[_Item]:
        ids = [e.ids for e in self._tokenizer.encode_batch(texts)]
        vectors = np.empty((len(ids), self._dimensions), dtype=np.float32)
        start = 0
        while start < len(ids):
            end, budget = start, self._n_tokens
            while end < len(ids) and end - start < self._n_seq and len(ids[end]) <= budget:
                budget -= len(ids[end])
                end += 1
            self._encode(ids[start:end], vectors[start:end])
            start = end
        if self._layout.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)  # as torch's F.normalize
        return [(vectors[i], len(sequence)) for i, sequence in enumerate(ids)]

    def _encode(self, sequences: list[list[int]], out: np.ndarray) -> None:
        batch = self._batch
        n = 0
        for seq, tokens in enumerate(sequences):
            for pos, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = True  # every token feeds the pooled vector
                n += 1
        batch.n_tokens = n
        with self._pool.turn() if self._pool is not None else no_turn():
            failed = llama_cpp.llama_encode(self._ctx, batch) != 0
        if failed:
            raise EngineFailure(f"llama.cpp failed to encode a batch of {len(sequences)} texts")
        width = self._dimensions
        for seq in range(len(sequences)):
            pointer = llama_cpp.llama_get_embeddings_seq(self._ctx, seq)
            if not pointer:
                raise EngineFailure("llama.cpp returned no pooled embedding")
            out[seq] = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), (width,))

    def info(self) -> ModelInfo:
        if self._model is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        return ModelInfo(
            id=self.spec.id,
            kind=self.kind,
            backend="llama.cpp",
            parameters=int(llama_cpp.llama_model_n_params(self._model)),
            file_size_bytes=self._path.stat().st_size,
            quantization="F32",
            context_length=self._max_tokens,
            device="cpu",
            extra={
                "dimensions": self._dimensions,
                "max_batch": self.spec.batch_size,
                "pooling": self._layout.pooling,
                "gguf": str(self._path),
            },
        )

    def close(self) -> None:
        super().close()
        with self._native_lock:
            self._free_native()

    def _free_native(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        native.free_loaded(self._ctx, self._pool, self._model)
        self._ctx = self._pool = self._model = None
