"""Reranking: how relevant each document is to a query, as the neutral layer says it.

With an embedding model the scores are a bi-encoder's: the query and each document are
embedded apart and scored by the cosine of their vectors. That is the retrieval step's own
measure, cheaper and weaker than a cross-encoder reading query and document together; the
model list says which one a model is (``rerank:bi-encoder``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class RerankRequest:
    model: str | None  # None: the first embedding model configured
    query: str
    documents: tuple[str, ...]
    truncate: bool = False


@dataclass(frozen=True, slots=True)
class RerankResult:
    model: str
    scores: tuple[float, ...]  # per document, in the request's order
    tokens: int

    def ranked(self, top_n: int | None) -> list[int]:
        """The documents' indexes, most relevant first, ``top_n`` of them."""
        order = sorted(range(len(self.scores)), key=lambda i: (-self.scores[i], i))
        return order if top_n is None else order[:top_n]


def bi_encoder_scores(vectors: np.ndarray) -> tuple[float, ...]:
    """The cosine of each document's vector (rows 1..n) with the query's (row 0)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    return tuple(float(s) for s in unit[1:] @ unit[0])


def pair_scores(vectors: np.ndarray, lefts: int) -> tuple[float, ...]:
    """vLLM's ``/score`` pairs: rows ``0..lefts-1`` are the first texts, the rest the second;
    one first text is scored against every second text, else they pair up in order."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    left, right = unit[:lefts], unit[lefts:]
    if lefts == 1:
        return tuple(float(s) for s in right @ left[0])
    return tuple(float(s) for s in np.einsum("ij,ij->i", left, right))
