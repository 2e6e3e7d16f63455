"""ConstrainedSampler without a model: a byte vocabulary and a logits row we write ourselves."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import llguidance
import numpy as np
import pytest

from hearth.engines import constraints
from hearth.engines.grammar_walk import EOS, byte_tokenizer
from hearth.engines.llama.grammar import ConstrainedSampler, GrammarFailure

N_VOCAB = EOS + 1


class Row:
    """Stands in for the context's logits: ``llama_get_logits_ith`` points into ``values``."""

    def __init__(self) -> None:
        self.values = np.zeros(N_VOCAB, dtype=np.float32)

    def prefer(self, text: bytes) -> None:
        """Logits that rank these bytes first, in order; everything else far below."""
        self.values[:] = -10.0
        for rank, token in enumerate(text):
            self.values[token] = 10.0 - rank

    def pointer(self, _ctx: Any, _index: int) -> Any:
        return self.values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class Argmax:
    """An inner sampler: the argmax of the row as it is when called (after any mask)."""

    def __init__(self, row: Row) -> None:
        self.row = row
        self.draws = 0

    def sample(self, ctx: Any, index: int) -> int:
        self.draws += 1
        return int(self.row.values.argmax())

    def close(self) -> None:
        pass


@pytest.fixture
def row(monkeypatch: pytest.MonkeyPatch) -> Row:
    row = Row()
    monkeypatch.setattr(llama_cpp, "llama_get_logits_ith", row.pointer)
    return row


def sampler(row: Row, constraint: constraints.Constraint, mask_first: bool = False) -> ConstrainedSampler:
    matcher = llguidance.LLMatcher(byte_tokenizer(), constraint.grammar, log_level=0)
    return ConstrainedSampler(Argmax(row), matcher, N_VOCAB, mask_first)


def test_an_allowed_draw_costs_no_mask_and_a_rejected_one_is_redrawn_from_the_allowed(row: Row) -> None:
    s = sampler(row, constraints.lark('start: "yes" | "no"'))
    row.prefer(b"y")
    assert s.sample(None, 0) == ord("y") and s.rejections == 0
    assert row.values[ord("x")] == -10.0  # the row was left alone
    row.prefer(b"xe")  # "x" is not allowed after "y": masked to -inf, then "e" is drawn
    assert s.sample(None, 0) == ord("e") and s.rejections == 1
    assert row.values[ord("x")] == -np.inf
    assert not s.complete
    row.prefer(b"s")
    assert s.sample(None, 0) == ord("s") and s.complete  # the grammar can't go on: the sequence ends


def test_eos_only_where_the_grammar_may_end(row: Row) -> None:
    s = sampler(row, constraints.json_schema({"type": "integer"}))
    row.prefer(b"7")
    row.values[EOS] = 20.0
    assert s.sample(None, 0) == ord("7")  # nothing written yet: EOS was drawn, refused, masked
    assert s.rejections == 1
    row.prefer(b"7")
    row.values[EOS] = 20.0
    assert s.sample(None, 0) == EOS  # after a digit the integer may end


def test_mask_first_masks_before_every_draw(row: Row) -> None:
    s = sampler(row, constraints.lark('start: "ab"'), mask_first=True)
    row.prefer(b"a")
    assert s.sample(None, 0) == ord("a")
    assert row.values[ord("z")] == -np.inf and s.rejections == 0


def test_a_dead_end_fails_the_sequence(row: Row) -> None:
    matcher = llguidance.LLMatcher(byte_tokenizer(), constraints.lark('start: "a"').grammar, log_level=0)
    matcher.consume_token(ord("z"))  # now in its error state: it allows nothing
    s = ConstrainedSampler(Argmax(row), matcher, N_VOCAB, mask_first=False)
    row.prefer(b"a")
    with pytest.raises(GrammarFailure):
        s.sample(None, 0)
