"""Reranking and vLLM's ``/score`` on an embedding model (a bi-encoder): one embeddings call per
request, so the embeddings' keys, limits, rollouts, fallbacks and usage row apply unchanged."""

from __future__ import annotations

from hearth.config import ModelKind
from hearth.errors import InvalidRequest
from hearth.gateway.call import Call
from hearth.gateway.service import Gateway
from hearth.inference.rerank import RerankRequest, RerankResult, bi_encoder_scores, pair_scores
from hearth.inference.types import EmbedRequest


async def rerank(gateway: Gateway, call: Call, request: RerankRequest) -> RerankResult:
    """How relevant each document is to the query: the cosine of their embeddings."""
    if not request.documents:
        raise InvalidRequest("documents must not be empty", param="documents")
    model = request.model or gateway.default_model(ModelKind.EMBEDDING)
    texts = (request.query, *request.documents)
    result = await gateway.embed(call, EmbedRequest(model, texts, truncate=request.truncate))
    return RerankResult(result.model, bi_encoder_scores(result.vectors), sum(result.token_counts))


async def score(
    gateway: Gateway, call: Call, model: str | None, lefts: tuple[str, ...], rights: tuple[str, ...]
) -> RerankResult:
    """vLLM's ``/score``: one first text against every second text, or pairs in order."""
    if not lefts or not rights:
        raise InvalidRequest("text_1 and text_2 must not be empty", param="text_1")
    if len(lefts) != 1 and len(lefts) != len(rights):
        raise InvalidRequest(
            f"text_1 has {len(lefts)} texts and text_2 {len(rights)}: give one text_1, or as many as text_2",
            param="text_1",
        )
    name = model or gateway.default_model(ModelKind.EMBEDDING)
    result = await gateway.embed(call, EmbedRequest(name, (*lefts, *rights)))
    return RerankResult(result.model, pair_scores(result.vectors, len(lefts)), sum(result.token_counts))
