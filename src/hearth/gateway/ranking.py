"""Reranking and vLLM's ``/score``: on a cross-encoder (a ``rerank`` model) when one is named or
configured, else on an embedding model as a bi-encoder (one embeddings call per request). Either
way the call is the gateway's: keys, limits, rollouts, fallbacks and the usage row apply."""

from __future__ import annotations

from hearth.config import ModelKind
from hearth.errors import InvalidRequest, ModelNotFound
from hearth.gateway.call import Call
from hearth.gateway.service import Gateway
from hearth.inference.rerank import RerankRequest, RerankResult, bi_encoder_scores, pair_scores
from hearth.inference.types import EmbedRequest


def _model(gateway: Gateway, name: str | None) -> str:
    """The model a request that names none gets: a cross-encoder if one is configured."""
    if name:
        return name
    try:
        return gateway.default_model(ModelKind.RERANK)
    except ModelNotFound:
        return gateway.default_model(ModelKind.EMBEDDING)


async def rerank(gateway: Gateway, call: Call, request: RerankRequest) -> RerankResult:
    """How relevant each document is to the query: a cross-encoder's score, or the cosine of
    their embeddings."""
    if not request.documents:
        raise InvalidRequest("documents must not be empty", param="documents")
    model = _model(gateway, request.model)
    if gateway.kind_of(call, model) == ModelKind.RERANK:
        pairs = [(request.query, document) for document in request.documents]
        served, scored = await gateway.score_pairs(call, model, pairs)
        return RerankResult(served, tuple(scored.scores), sum(scored.token_counts))
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
    name = _model(gateway, model)
    if gateway.kind_of(call, name) == ModelKind.RERANK:
        firsts = lefts * len(rights) if len(lefts) == 1 else lefts
        pairs = list(zip(firsts, rights, strict=True))
        served, scored = await gateway.score_pairs(call, name, pairs)
        return RerankResult(served, tuple(scored.scores), sum(scored.token_counts))
    result = await gateway.embed(call, EmbedRequest(name, (*lefts, *rights)))
    return RerankResult(result.model, pair_scores(result.vectors, len(lefts)), sum(result.token_counts))
