"""The llama.cpp sampler chain on hand-made logits (no model): top-k, min-p and the repeat penalty."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp

from hearth.engines.base import SamplingParams
from hearth.engines.llama.sampling import REPEAT_WINDOW, ChainSampler, GreedySampler, build_sampler


def pick(sampler: ChainSampler, logits: Sequence[float], accepted: Sequence[int] = ()) -> int:
    """The token the chain draws from ``logits`` after the tokens ``accepted`` were generated."""
    chain = sampler._chain
    for token in accepted:
        llama_cpp.llama_sampler_accept(chain, token)
    cells = (llama_cpp.llama_token_data * len(logits))(
        *(llama_cpp.llama_token_data(i, x, 0.0) for i, x in enumerate(logits))
    )
    data = llama_cpp.llama_token_data_array(cells, len(logits), -1, False)
    llama_cpp.llama_sampler_apply(chain, ctypes.byref(data))
    return int(cells[data.selected].id)


def draws(logits: Sequence[float], **params: float) -> set[int]:
    """The tokens 40 seeded draws choose."""
    chosen = set()
    for seed in range(40):
        sampler = ChainSampler(SamplingParams(max_tokens=8, seed=seed, **params), len(logits))  # type: ignore[arg-type]
        chosen.add(pick(sampler, logits))
        sampler.close()
    return chosen


def test_top_k_keeps_only_the_k_most_likely() -> None:
    flat = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    assert len(draws(flat, temperature=1.0)) > 2
    assert draws(flat, temperature=1.0, top_k=1) == {0}
    assert draws(flat, temperature=1.0, top_k=2) <= {0, 1}


def test_min_p_drops_tokens_far_below_the_best() -> None:
    logits = [1.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # the six zeros: p = 0.37 of the best's
    assert draws(logits, temperature=1.0) - {0, 1}
    assert draws(logits, temperature=1.0, min_p=0.5) <= {0, 1}


def test_repeat_penalty_steers_greedy_away_from_recent_tokens() -> None:
    logits = [1.0, 0.8, 0.1]
    plain = ChainSampler(SamplingParams(max_tokens=8, temperature=0.0), 3)
    assert pick(plain, logits, accepted=[0]) == 0
    penalised = ChainSampler(SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=2.0), 3)
    assert pick(penalised, logits, accepted=[0]) == 1  # 1.0 / 2 < 0.8
    # Only the last REPEAT_WINDOW generated tokens count.
    window = ChainSampler(SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=2.0), 3)
    assert pick(window, logits, accepted=[0] + [2] * REPEAT_WINDOW) == 0


def test_a_repeat_penalty_needs_the_chain_even_at_temperature_zero() -> None:
    assert isinstance(build_sampler(SamplingParams(max_tokens=1, temperature=0.0), 8), GreedySampler)
    chain = build_sampler(SamplingParams(max_tokens=1, temperature=0.0, repeat_penalty=1.1), 8)
    assert isinstance(chain, ChainSampler)
