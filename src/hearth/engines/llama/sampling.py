"""Per-sequence token samplers built from llama.cpp's C sampler chains.

Each running sequence owns one chain, so its settings (temperature, seed, penalties, logit
bias) and state (the RNG, the penalty counts) never leak into other sequences decoded in the same
batch. A chain samples straight from the logits row of its sequence's output in the last
``llama_decode`` (``llama_sampler_sample(chain, ctx, batch_index)``): the 262k-entry vocabulary
is never walked in Python.

Chain order: logit bias, then the penalties (OpenAI's presence/frequency over the tokens
generated so far, llama.cpp's repeat penalty over the last 64), then either greedy (temperature
0) or top-k -> top-p -> min-p -> temperature -> a seeded draw, the order llama.cpp's server uses.

Plain greedy (temperature 0, no bias, no penalties) skips the chain: ``llama_sampler_sample``
first copies all 262k logits into a candidate array (~0.7 ms here, per sequence and step),
while the argmax of the logits row, read in place, takes ~30 us. Both take the first maximum,
so the choice is identical.
"""

from __future__ import annotations

import ctypes
from typing import Any, Protocol

import llama_cpp
import numpy as np

from hearth.engines.base import SamplingParams


class Sampler(Protocol):
    """Chooses the next token of one sequence from the output at ``index`` of the last decode."""

    def sample(self, ctx: Any, index: int) -> int: ...

    def close(self) -> None: ...


def uint32_seed(seed: int | None) -> int:
    if seed is None:
        return int(llama_cpp.LLAMA_DEFAULT_SEED)  # llama.cpp draws a random seed
    value = seed & 0xFFFFFFFF
    # LLAMA_DEFAULT_SEED itself means "random", so a fixed seed must avoid it.
    return value if value != llama_cpp.LLAMA_DEFAULT_SEED else value - 1


REPEAT_WINDOW = 64


class ChainSampler:
    def __init__(self, params: SamplingParams, n_vocab: int) -> None:
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._chain: Any = llama_cpp.llama_sampler_chain_init(chain_params)
        if params.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))(
                *(llama_cpp.llama_logit_bias(token, bias) for token, bias in params.logit_bias.items())
            )
            # The sampler copies the array, so it may be freed after this call.
            self._add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), biases))
        if params.presence_penalty or params.frequency_penalty or params.repeat_penalty != 1.0:
            # Over the last 64 tokens for the repeat penalty (llama.cpp's and Ollama's window),
            # over everything generated for OpenAI's presence and frequency penalties.
            window = REPEAT_WINDOW if params.repeat_penalty != 1.0 else max(1, params.max_tokens)
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab, window, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
                )
            )
        if params.temperature <= 0:
            self._add(llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                self._add(llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                self._add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0:
                self._add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            self._add(llama_cpp.llama_sampler_init_temp(params.temperature))
            self._add(llama_cpp.llama_sampler_init_dist(uint32_seed(params.seed)))

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)  # the chain owns it from here

    def sample(self, ctx: Any, index: int) -> int:
        # Also "accepts" the token into the chain's state (penalty counts).
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:
        self.close()  # a sequence cancelled while queued after preemption is never closed


class GreedySampler:
    def __init__(self, n_vocab: int) -> None:
        self._row = ctypes.POINTER(ctypes.c_float * n_vocab)

    def sample(self, ctx: Any, index: int) -> int:
        row = ctypes.cast(llama_cpp.llama_get_logits_ith(ctx, index), self._row).contents
        return int(np.frombuffer(memoryview(row), dtype=np.float32).argmax())

    def close(self) -> None:
        pass


def build_sampler(params: SamplingParams, n_vocab: int) -> Sampler:
    plain = not (
        params.logit_bias
        or params.presence_penalty
        or params.frequency_penalty
        or params.repeat_penalty != 1.0
    )
    if params.temperature <= 0 and plain:
        return GreedySampler(n_vocab)
    return ChainSampler(params, n_vocab)
