"""Grammar-constrained sampling with llguidance, per sequence, inside the shared decode step.

Why llguidance and not llama.cpp's GBNF sampler: the GBNF sampler checks candidates by walking
each token's text through its parse stacks, about 50 ms for Gemma's 262k-token vocabulary on
this machine class (6 ms for SmolLM2's 49k), whenever a sampled token is rejected; llguidance
computes a whole-vocabulary mask from a token trie in tens of microseconds. bench/constrained_decode.py
has the figures.

Each step, :class:`ConstrainedSampler` lets the sequence's own sampler (its chain, or the greedy
argmax) pick a token from the raw logits, and asks the matcher about that one token (~1 us). Only
when it is rejected does the matcher compute the mask; the logits row is then masked in place
(-inf) and the same sampler picks again. For greedy and for temperature/seed sampling this draws
from exactly the masked distribution (accept-if-allowed, else redraw from the allowed set);
top-p's nucleus is taken over the unmasked distribution when the first draw is allowed, as
llama.cpp's own common sampler does. Penalties are the exception: a chain counts every token it
samples, so a rejected draw would be counted; with penalties the row is masked first.

Special tokens: every end-of-generation token (Gemma's ``<end_of_turn>`` as well as ``<eos>``)
is the grammar's EOS, allowed only where the grammar may end, and a complete grammar ends the
sequence without one. Other control tokens are marked as special in the llguidance tokenizer,
so no grammar text ever matches them (a Lark grammar can still name one, ``<|python_tag|>``).

The llguidance tokenizer (every token's bytes, control tokens marked) takes 1-4 s to build for a
262k vocabulary, so it is built once per engine, on first use, off the scheduler thread; so is
each grammar's matcher, cached by grammar, and each sequence deep-copies its cached matcher (~5 us).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

import llama_cpp
import llguidance
import llguidance.llamacpp
import numpy as np

from hearth.engines.constraints import Constraint
from hearth.engines.llama.sampling import Sampler
from hearth.errors import EngineFailure, InvalidRequest

CACHE_SIZE = 64


class GrammarFailure(EngineFailure):
    """The matcher reached a state it can't continue from (it allows no token)."""


class Grammars:
    """One engine's llguidance tokenizer and its compiled matchers, by grammar."""

    def __init__(self, vocab: Any, n_vocab: int) -> None:
        self._vocab = vocab
        self._n_vocab = n_vocab
        self._lock = threading.Lock()  # the cache; held briefly, also on the event loop
        self._build_lock = threading.Lock()  # the tokenizer build; held for seconds, worker threads only
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._cache: collections.OrderedDict[str, llguidance.LLMatcher] = collections.OrderedDict()

    async def matcher(self, constraint: Constraint) -> llguidance.LLMatcher:
        """A fresh matcher for ``constraint``; compiled in a worker thread the first time."""
        with self._lock:
            template = self._cache.get(constraint.grammar)
            if template is not None:
                self._cache.move_to_end(constraint.grammar)
                return template.deep_copy()
        template = await asyncio.to_thread(self._compile, constraint.grammar)
        return template.deep_copy()

    def tokenizer(self) -> llguidance.LLTokenizer:
        """Built on first use, blocking: call it from a worker thread."""
        with self._build_lock:
            if self._tokenizer is None:
                eog = [t for t in range(self._n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t)]
                # Every end-of-generation token (Gemma's <end_of_turn> as well as <eos>) ends a
                # grammar, and only where the grammar may end.
                self._tokenizer = llguidance.llamacpp.lltokenizer_from_vocab(self._vocab, eos_token=eog)
            return self._tokenizer

    def _compile(self, grammar: str) -> llguidance.LLMatcher:
        matcher = llguidance.LLMatcher(self.tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise InvalidRequest(
                f"the output constraint can't be used with this model: {matcher.get_error()}"
            )
        with self._lock:
            self._cache[grammar] = matcher
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return matcher


class ConstrainedSampler:
    """A sequence's sampler, restricted to the tokens its grammar allows."""

    def __init__(self, inner: Sampler, matcher: llguidance.LLMatcher, n_vocab: int, mask_first: bool) -> None:
        self._inner = inner
        self._matcher = matcher
        self._n_vocab = n_vocab
        self._mask_first = mask_first
        self._mask = np.zeros((n_vocab + 31) // 32, dtype=np.int32)
        self.rejections = 0  # draws the grammar refused (each cost a mask and a second draw)

    @property
    def complete(self) -> bool:
        """The grammar can't take another token: the sequence ends here."""
        return bool(self._matcher.is_stopped())

    def sample(self, ctx: Any, index: int) -> int:
        if self._mask_first:
            self._apply_mask(ctx, index)
            token = self._inner.sample(ctx, index)
        else:
            token = self._inner.sample(ctx, index)
            if self._matcher.validate_tokens([token]) != 1:
                self.rejections += 1
                self._apply_mask(ctx, index)
                token = self._inner.sample(ctx, index)
        if not self._matcher.consume_token(token):
            raise GrammarFailure(f"the grammar refused its own token: {self._matcher.get_error()}")
        return token

    def _apply_mask(self, ctx: Any, index: int) -> None:
        mask = self._mask
        self._matcher.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
        if self._matcher.is_error() or not mask.any():
            raise GrammarFailure(
                f"the grammar allows no token here: {self._matcher.get_error() or 'dead end'}"
            )
        allowed = np.unpackbits(mask.view(np.uint8), count=self._n_vocab, bitorder="little").view(bool)
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,))
        np.putmask(row, ~allowed, -np.inf)

    def close(self) -> None:
        self._inner.close()
