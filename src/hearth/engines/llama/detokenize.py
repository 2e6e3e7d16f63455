"""Token ids -> streamed text, correct across tokens that split a UTF-8 character.

A byte-level token can end in the middle of a multi-byte character (an emoji is often two or
three tokens), so pieces are fed as bytes into an incremental UTF-8 decoder that holds
incomplete sequences back until the next token completes them. Special/control tokens render as
nothing (``special=False``), as in the text a client should see.
"""

from __future__ import annotations

import codecs
import ctypes
from typing import Any

import llama_cpp


class PieceTable:
    """Byte pieces of token ids, cached: a piece never changes and the vocabulary is shared."""

    def __init__(self, vocab: Any) -> None:
        self._vocab = vocab
        self._cache: dict[int, bytes] = {}
        self._buf = ctypes.create_string_buffer(128)

    def piece(self, token: int) -> bytes:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buf, len(self._buf), 0, False)
        if n < 0:  # buffer too small: -n is the size needed
            self._buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buf, len(self._buf), 0, False)
        data = self._buf.raw[: max(n, 0)]
        self._cache[token] = data
        return data


class IncrementalDetokenizer:
    def __init__(self, pieces: PieceTable) -> None:
        self._pieces = pieces
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self._decoder.decode(self._pieces.piece(token))

    def flush(self) -> str:
        """Whatever is still buffered (an unfinished character becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)
