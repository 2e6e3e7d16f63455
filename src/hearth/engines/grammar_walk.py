"""Text that satisfies a constraint, without a model: a walk over bytes under llguidance's mask.

The fake engine answers constrained requests with it, so API tests on fakes get output that
really follows the schema or the tool-call grammar; the compiler's tests fuzz it with a seeded
random choice to check that every accepted schema is enforced, not relaxed.

The vocabulary is the 256 bytes plus an EOS token. The walk is seeded, so a fake's answer is
the same for the same request.
"""

from __future__ import annotations

import functools
import random

import llguidance

from hearth.engines.constraints import Constraint

EOS = 256
_CLOSERS = [EOS, *b'}]",']
_QUOTE = [ord('"')]
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class _ByteVocabulary:
    """The duck-typed tokenizer llguidance's ``TokenizerWrapper`` expects."""

    eos_token_id = EOS
    bos_token_id = None
    tokens = [bytes([i]) for i in range(256)] + [b"\xff<eos>"]  # 0xff marks a special token
    special_token_ids = [EOS]

    def __call__(self, data: bytes) -> list[int]:
        return list(data)


@functools.cache
def byte_tokenizer() -> llguidance.LLTokenizer:
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteVocabulary()))


def walk(
    constraint: Constraint, rng: random.Random, *, max_bytes: int, prefer: bytes = b"", plain: bool = True
) -> tuple[bytes, bool]:
    """``(output, complete)``: up to ``max_bytes`` the grammar allows; ``complete`` once it may end.

    The walk follows ``prefer`` while the grammar allows it. After that each byte is drawn among
    the allowed ones, often one that ends what is open (EOS, ``}``, ``]``, ``"``, ``,``) so the walk
    ends soon; ``plain`` draws most of the rest from ASCII letters and digits where allowed.
    """
    matcher = llguidance.LLMatcher(byte_tokenizer(), constraint.grammar, log_level=0)
    out = bytearray()
    following = True  # still on ``prefer``
    in_string = False  # a guess (quote parity), only to pick nicer bytes
    while not matcher.is_stopped():
        if matcher.is_error():
            raise RuntimeError(f"the grammar walk failed: {matcher.get_error()}")
        bits = int.from_bytes(matcher.compute_bitmask(), "little")
        allowed = [t for t in range(EOS + 1) if bits >> t & 1]
        if not allowed:
            raise RuntimeError("the grammar allows no byte here")
        if len(out) >= max_bytes:
            return bytes(out), False
        if following and prefer and len(out) == len(prefer) and EOS in allowed:
            break  # ``prefer`` was all written and may end here
        wanted = prefer[len(out)] if following and len(out) < len(prefer) else None
        if wanted in allowed:
            token = wanted
        else:
            following = False
            token = _choose(allowed, rng, plain, in_string)
        if token == EOS:
            break
        matcher.consume_token(token)
        if token == ord('"') and not (out and out[-1] == ord("\\")):
            in_string = not in_string
        out.append(token)
    return bytes(out), True


def _choose(allowed: list[int], rng: random.Random, plain: bool, in_string: bool) -> int:
    closers = [t for t in (_QUOTE if in_string else _CLOSERS) if t in allowed]
    draw = rng.random()
    if closers and draw < 0.4:
        return closers[0] if plain else rng.choice(closers)
    if plain and draw < 0.9 and (alnum := [t for t in allowed if t in _ALNUM]):
        return rng.choice(alnum)
    return rng.choice(allowed)
