"""llama.cpp chat engine: one model, one context, every running sequence decoded together.

KV cache policy. The context has ``n_seq_max = slots`` (plus a scratch id for the host cache); each sequence may hold up to
``context_length`` tokens (the spec's, else the model's training context up to 8192). By default the KV
cache is *unified*: all slots share one pool of ``n_ctx_total`` cells, with
``n_ctx_total = min(slots * context_length, max(context_length, 32768))``, so a few long
conversations or many short ones fit without reserving ``slots * context_length`` cells that
would mostly sit empty (``options.kv_cells`` overrides it, ``options.kv_unified = false`` gives
each slot its own ``context_length`` cells instead). If the pool runs out, the scheduler evicts
idle prefix caches, then preempts and later recomputes the newest sequence (see scheduler.py).
A slot's state about to be overwritten goes to a host-memory cache of ``options.host_cache_mb``
MiB (1024 by default, 0 turns it off; filled only when conversations outnumber the slots), from
which a returning conversation is restored instead of prefilled again (host_cache.py).
Sliding-window layers (Gemma 3: 15 of 18 layers) keep only a window of ``n_swa`` positions per
sequence (``swa_full = false``), which keeps their cache small: with the defaults the gemma-3-270m
context holds about 160 MiB of KV cache in all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import llama_cpp

from hearth.config import ModelSpec
from hearth.cpu_topology import physical_cores
from hearth.engines.base import (
    ChatEngine,
    EngineActivity,
    GenerationDone,
    GenerationEvent,
    ModelFootprint,
    ModelInfo,
    SamplingParams,
)
from hearth.engines.llama import native
from hearth.engines.llama.chat_template import ChatTemplate, TemplateOrigin, template_messages
from hearth.engines.llama.detokenize import IncrementalDetokenizer, PieceTable
from hearth.engines.llama.gguf_meta import kv_cache_bytes, read_gguf
from hearth.engines.llama.grammar import ConstrainedSampler, Grammars
from hearth.engines.llama.model_file import gguf_files, resolve_gguf
from hearth.engines.llama.sampling import Sampler, build_sampler
from hearth.engines.llama.scheduler import Scheduler
from hearth.engines.llama.sequence import Runtime, Sequence
from hearth.engines.llama.threadpool import PoolLease, no_turn
from hearth.errors import EngineFailure, NotReady
from hearth.inference.types import Message, Tool

log = logging.getLogger("hearth.llama")

DEFAULT_POOL_CELLS = 32768
# Without a configured context_length, a sequence gets at most this many tokens: Llama 3.2's
# trained 131072 would reserve gigabytes of KV cache that few local chats ever use.
DEFAULT_MAX_CONTEXT = 8192
# SmolLM2 keeps 23 KB of KV per token: 1 GiB holds about 45,000 tokens of past conversations.
DEFAULT_HOST_CACHE_MB = 1024


class LlamaEngine(ChatEngine):
    supports_constraints = True
    _model: Any = None
    _ctx: Any = None
    _scheduler: Scheduler | None = None
    _pool: PoolLease | None = None

    # ---- loading ---------------------------------------------------------------------------

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        return gguf_files(spec.source, data_dir)

    @classmethod
    def footprint(cls, spec: ModelSpec, data_dir: Path) -> ModelFootprint:
        """From the GGUF header: parameters, quantisation, and weights plus an f16 KV cache."""
        paths = cls.weight_files(spec, data_dir)
        summary = read_gguf(paths)
        meta = summary.metadata
        size = sum(p.stat().st_size for p in paths)
        ftype = meta.get("general.file_type")
        trained = meta.get(f"{meta.get('general.architecture')}.context_length")
        context = spec.context_length or (min(int(trained), DEFAULT_MAX_CONTEXT) if trained else None)
        kv = kv_cache_bytes(meta, context or 4096) or 0
        return ModelFootprint(
            spec.id,
            spec.kind.value,
            spec.backend,
            file_bytes=size,
            parameters=summary.parameters,
            quantization=native.FTYPE_NAMES.get(ftype, f"ftype-{ftype}") if isinstance(ftype, int) else None,
            context_length=context,
            memory_bytes=int(size * 1.05) + kv,
            note=f"weights + f16 KV cache for {context or 4096} tokens",
            files=[str(p) for p in paths],
        )

    def load(self) -> None:
        try:
            self._load()
        except BaseException:
            self.close()  # don't leak a half-built model or context
            raise

    def _model_params(self) -> Any:
        params = llama_cpp.llama_model_default_params()
        if native.amx_compiled() and not self.spec.options.get("amx", False):
            # No extra buffers means no AMX (and no weight repacking): slower, but it doesn't crash.
            params.use_extra_bufts = False
            log.warning(
                "%s: this llama-cpp-python was compiled with AMX, whose kernels crash on some CPUs; "
                "loading without AMX and weight repacking. For full speed, rebuild it without AMX: "
                "CFLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' (as `make install` does), "
                "or set options.amx = true for this model to use AMX anyway.",
                self.spec.id,
            )
        return params

    def _load(self) -> None:
        native.ensure_backend()
        self._path = resolve_gguf(self.spec.source, self.data_dir)
        options = self.spec.options
        with native.captured_log() as lines:
            self._model = llama_cpp.llama_model_load_from_file(str(self._path).encode(), self._model_params())
            if not self._model:
                raise EngineFailure(f"llama.cpp could not load {self._path}: {_last_error(lines)}")
            n_train = int(llama_cpp.llama_model_n_ctx_train(self._model))
            self._n_train = n_train
            self._ctx_seq = (
                self.spec.context_length or min(n_train, DEFAULT_MAX_CONTEXT) or DEFAULT_MAX_CONTEXT
            )
            if self.spec.context_length is None and n_train > DEFAULT_MAX_CONTEXT:
                log.info(
                    "%s: context_length unset; using %d tokens per sequence, not the trained %d "
                    "(set context_length to use more)",
                    self.spec.id,
                    DEFAULT_MAX_CONTEXT,
                    n_train,
                )
            if n_train > 0 and self._ctx_seq > n_train:
                log.warning(
                    "%s: context_length %d exceeds the trained %d", self.spec.id, self._ctx_seq, n_train
                )
                self._ctx_seq = n_train
            self._unified = bool(options.get("kv_unified", True))
            slots = self.spec.slots
            n_swa = int(llama_cpp.llama_model_n_swa(self._model))
            if self._unified:
                default_cells = min(slots * self._ctx_seq, max(self._ctx_seq, DEFAULT_POOL_CELLS))
                n_ctx = max(self._ctx_seq, int(options.get("kv_cells", default_cells)))
            else:
                n_ctx = slots * self._ctx_seq
            self._threads = self.spec.threads or physical_cores()
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx
            params.n_batch = params.n_ubatch = self.spec.batch_size
            # One sequence id past the slots lets the host cache copy ranges of cells (host_cache.py).
            self._scratch_seq = slots if self._unified and n_swa == 0 else None
            params.n_seq_max = slots + (self._scratch_seq is not None)
            params.n_outputs_max = min(params.n_seq_max, self.spec.batch_size)  # a row of logits per sequence
            params.n_threads = params.n_threads_batch = self._threads
            params.swa_full = False  # SWA layers keep only their window, per sequence
            params.kv_unified = self._unified
            params.no_perf = True
            self._ctx = llama_cpp.llama_init_from_model(self._model, params)
            if not self._ctx:
                raise EngineFailure(f"llama.cpp could not create a context: {_last_error(lines)}")
        if not native.openmp_compiled():
            # Without one, ggml starts and joins new threads on every decode (see threadpool.py).
            self._pool = PoolLease.for_context(self._ctx, self._threads, self.spec.options)
        elif self._threads > 1:
            log.warning(
                "%s: this llama-cpp-python uses OpenMP, whose runtime torch shares; with torch models "
                "in the same server its decode slows down (see threadpool.py). Rebuild it with "
                "CMAKE_ARGS=-DGGML_OPENMP=OFF, as `make install` does.",
                self.spec.id,
            )
        self._kv_bytes = native.kv_cache_bytes(lines)
        self._n_ctx_total = int(llama_cpp.llama_n_ctx(self._ctx))
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)) and self._bos >= 0
        self._template = self._chat_template()
        runtime = Runtime(
            ctx=self._ctx,
            vocab=self._vocab,
            n_batch=int(llama_cpp.llama_n_batch(self._ctx)),  # llama.cpp caps it at n_ctx
            slots=self.spec.slots,
            max_queue=self.spec.max_queue,
            ctx_seq=self._ctx_seq,
            n_ctx_total=self._n_ctx_total,
            unified=self._unified,
            n_swa=int(llama_cpp.llama_model_n_swa(self._model)),
            scratch_seq=self._scratch_seq,
            host_cache_bytes=int(
                float(self.spec.options.get("host_cache_mb", DEFAULT_HOST_CACHE_MB)) * 2**20
            ),
            turn=self._pool.turn if self._pool is not None else no_turn,
            cpu_turn=self.context.compute.turn,
        )
        self._grammars = Grammars(self._vocab, self._n_vocab)
        self._scheduler = Scheduler(runtime, PieceTable(self._vocab), warm_up=self._warm_up)

    def _chat_template(self) -> ChatTemplate:
        source: str | None = self.spec.chat_template
        origin: TemplateOrigin = "config"
        if not source:
            source, origin = native.meta_str(self._model, "tokenizer.chat_template"), "gguf"
        eos = int(llama_cpp.llama_vocab_eos(self._vocab))
        return ChatTemplate(
            source, origin, bos_token=self._token_text(self._bos), eos_token=self._token_text(eos)
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        text = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode("utf-8", errors="replace") if text else ""

    def _warm_up(self) -> None:
        """Touch every weight page once (the file is mmapped) so the first request is not slow.

        Runs on the scheduler thread, like every decode (see ``Scheduler.__init__``).
        """
        token = self._bos if self._bos >= 0 else 0
        arr = (llama_cpp.llama_token * 1)(token)
        batch = llama_cpp.llama_batch_get_one(arr, 1)
        with self._pool.turn() if self._pool is not None else no_turn():
            failed = llama_cpp.llama_decode(self._ctx, batch) != 0
        if failed:
            raise EngineFailure("llama.cpp failed the warm-up decode")
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
            self._scheduler = None
        native.free_loaded(self._ctx, self._pool, self._model)
        self._ctx = self._pool = self._model = None

    # ---- ChatEngine ------------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        return int(self._ctx_seq)

    @property
    def n_vocab(self) -> int | None:
        return int(self._n_vocab)

    def info(self) -> ModelInfo:
        return ModelInfo(
            id=self.spec.id,
            kind=self.kind,
            backend="llama.cpp",
            parameters=int(llama_cpp.llama_model_n_params(self._model)),
            file_size_bytes=self._path.stat().st_size,
            quantization=native.quantization_name(self._model),
            context_length=self._ctx_seq,
            device="cpu",
            extra={
                "slots": self.spec.slots,
                "n_ctx_train": self._n_train,
                "kv_cache_bytes": self._kv_bytes,
                "kv_unified": self._unified,
                "n_ctx_total": self._n_ctx_total,
                "threads": self._threads,
                "batch_size": self.spec.batch_size,
                "chat_template": self._template.origin,
                "architecture": native.meta_str(self._model, "general.architecture"),
            },
        )

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        while True:
            buf = (llama_cpp.llama_token * capacity)()
            # parse_special: template markup such as <start_of_turn> becomes its control token.
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, False, True)
            if n >= 0:
                break
            capacity = -n
        tokens = list(buf[:n])
        # BOS only when the model wants one and the text (e.g. a rendered template) lacks it.
        if self._add_bos and (not tokens or tokens[0] != self._bos):
            tokens.insert(0, self._bos)
        return tokens

    def detokenize(self, tokens: list[int]) -> str:
        """Text of ``tokens`` as a stream would show it (control tokens render as nothing)."""
        detok = IncrementalDetokenizer(PieceTable(self._vocab))  # own table: the scheduler's is busy
        return "".join(detok.push(token) for token in tokens) + detok.flush()

    def render_chat(self, messages: Seq[Message], tools: Seq[Tool] = ()) -> str:
        listed = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in tools
        ]
        return self._template.render(template_messages(messages), listed)

    @property
    def template_renders_tools(self) -> bool:
        return self._template.renders_tools

    def chat_stop_sequences(self) -> tuple[str, ...]:
        # The plain fallback has no end-of-turn token: the next speaker's prefix ends a turn.
        return ("\nuser:",) if self._template.origin == "fallback" else ()

    async def generate(
        self, prompt: list[int], params: SamplingParams, *, sampler: Sampler | None = None
    ) -> AsyncGenerator[GenerationEvent, None]:
        """Queue a generation and stream its events; closing early cancels it.

        ``sampler`` replaces the sampler built from ``params`` (tests use it to force tokens).
        """
        scheduler = self._scheduler
        if scheduler is None:
            raise NotReady(f"the model {self.spec.id!r} is not loaded", retry_after=2)
        self.validate(prompt, params)
        n_vocab = self._n_vocab

        def make_sampler() -> Sampler:
            inner = sampler if sampler is not None else build_sampler(params, n_vocab)
            if matcher is None:
                return inner
            # Penalties count every draw, so a rejected one must never be drawn: mask first.
            mask_first = bool(params.presence_penalty or params.frequency_penalty)
            return ConstrainedSampler(inner, matcher, n_vocab, mask_first)

        # Compiled off the event loop (and the scheduler thread) the first time a grammar is seen.
        matcher = await self._grammars.matcher(params.constraint) if params.constraint else None
        seq = Sequence(list(prompt), params, asyncio.get_running_loop(), make_sampler)
        scheduler.submit(seq)  # raises Overloaded when the queue is full
        done = False
        try:
            while not done:
                event = await seq.queue.get()
                if isinstance(event, BaseException):
                    done = True
                    raise event
                done = isinstance(event, GenerationDone)
                yield event
        finally:
            # aclose(), task cancellation (client gone) or garbage collection end up here.
            if not done:
                scheduler.cancel(seq)

    # ---- introspection (tests, metrics) ----------------------------------------------------

    def prepare_constraints(self) -> None:
        """Build the grammar tokenizer now (blocking, 1-4 s), not on the first constrained request."""
        self._grammars.tokenizer()

    def scheduler_stats(self) -> dict[str, int]:
        return self._scheduler.stats() if self._scheduler else {}

    def activity(self) -> EngineActivity:
        stats = self.scheduler_stats()
        if not stats:
            return EngineActivity()
        usage = stats["kv_cells_used"] / stats["kv_cells"] if stats["kv_cells"] else None
        return EngineActivity(
            stats["running"], stats["waiting"], stats["steps"], stats["batched_tokens"], usage
        )

    def clear_prefix_cache(self) -> None:
        if self._scheduler is not None:
            self._scheduler.clear_cache()


def _last_error(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if "error" in line.lower()), "see the log")
