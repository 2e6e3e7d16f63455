"""What the continuous-batching scheduler works with: a request's sequence, a KV slot, the batch.

``Sequence`` is shared between the event loop (``queue``, ``cancelled``) and the scheduler thread
(everything else, once submitted); ``Slot`` and ``BatchView`` belong to the scheduler thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import llama_cpp

from hearth.engines.base import SamplingParams
from hearth.engines.llama.detokenize import IncrementalDetokenizer
from hearth.engines.llama.sampling import Sampler
from hearth.engines.llama.stops import StopFilter
from hearth.engines.llama.threadpool import no_turn
from hearth.inference.events import GenerationEvent

Event = GenerationEvent | BaseException
SamplerFactory = Callable[[], Sampler]


@dataclass(frozen=True)
class Runtime:
    """What the scheduler needs from a loaded model and its context."""

    ctx: Any
    vocab: Any
    n_batch: int
    slots: int
    max_queue: int
    ctx_seq: int  # most tokens one sequence may hold
    n_ctx_total: int  # KV cells in the context (shared by all slots when unified)
    unified: bool
    n_swa: int  # sliding window of SWA layers; 0 when the model has none
    host_cache_bytes: int = 0  # budget of KV state kept in host memory past the slots (host_cache.py)
    scratch_seq: int | None = None  # a sequence id beyond the slots', for the host cache's copies
    # Held around every decode: the context's turn on the thread pool it shares (threadpool.py).
    turn: Callable[[], AbstractContextManager[None]] = no_turn
    # And the server's turn on the CPU, shared with the other engines' passes (compute.py).
    cpu_turn: Callable[[], AbstractContextManager[None]] = no_turn


class Sequence:
    """One generation request, from ``submit`` to its ``GenerationDone``."""

    def __init__(
        self,
        prompt: list[int],
        params: SamplingParams,
        loop: asyncio.AbstractEventLoop,
        make_sampler: SamplerFactory,
    ) -> None:
        self.prompt = prompt
        self.params = params
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.make_sampler = make_sampler
        self.cancelled = False  # set from the event loop; read by the scheduler thread
        # Owned by the scheduler thread from here on.
        self.tokens = list(prompt)  # what must be in the KV cache before the next sample
        self.fed = 0  # how many of ``tokens`` are in the KV cache
        self.slot: Slot | None = None
        self.sampler: Sampler | None = None
        self.detok: IncrementalDetokenizer | None = None
        self.stops = StopFilter(params.stop)
        self.out_index = -1  # batch index of this sequence's logits in the last decode, or -1
        self.completion_tokens = 0
        self.admitted_tokens = 0  # completion_tokens when it last took a slot (fair preemption)
        self.unreported = 0  # generated tokens not yet counted by a TextDelta
        self.cached_tokens: int | None = None
        self.cache_told = False  # whether a TextDelta has carried cached_tokens yet
        self.parked: Any = None  # a preempted sequence's cells in the host cache (a HostEntry)
        self.started = 0.0  # when it first took a slot
        self.submitted = time.monotonic()


@dataclass(eq=False)
class Slot:
    seq_id: int
    kv: list[int]  # tokens whose cells this seq id holds, at positions 0..len-1
    seq: Sequence | None = None
    last_used: float = 0.0
    cache_key: str | None = None  # the prompt_cache_key of the last sequence it ran


class BatchView:
    """A ``llama_batch`` with array views, so chunks are written by slice, not token by token."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        b = self.batch
        # Typed Any: ctypes' stubs reject slice assignment from plain ints and ranges.
        self.token: Any = ctypes.cast(b.token, ctypes.POINTER(ctypes.c_int32 * capacity)).contents
        self.pos: Any = ctypes.cast(b.pos, ctypes.POINTER(ctypes.c_int32 * capacity)).contents
        self.logits: Any = ctypes.cast(b.logits, ctypes.POINTER(ctypes.c_int8 * capacity)).contents
        n_seq_id: Any = ctypes.cast(b.n_seq_id, ctypes.POINTER(ctypes.c_int32 * capacity)).contents
        n_seq_id[:] = [1] * capacity
        self.seq_id = [b.seq_id[i] for i in range(capacity)]  # one seq id per token

    def put(self, at: int, tokens: list[int], pos0: int, seq_id: int, output_last: bool) -> None:
        end = at + len(tokens)
        self.token[at:end] = tokens
        self.pos[at:end] = range(pos0, pos0 + len(tokens))
        self.logits[at:end] = bytes(len(tokens))  # all off
        if output_last:
            self.logits[end - 1] = 1
        for i in range(at, end):
            self.seq_id[i][0] = seq_id

    def free(self) -> None:
        llama_cpp.llama_batch_free(self.batch)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i, step = 0, 256
    while i + step <= n and a[i : i + step] == b[i : i + step]:  # C-speed list compares
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i
