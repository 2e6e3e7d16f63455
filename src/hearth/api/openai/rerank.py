"""Rerank and score routes: Cohere's and Jina's ``/v1/rerank`` and ``/v2/rerank`` (and vLLM's
``/rerank``), and vLLM's ``/score`` and ``/v1/score``; errors in OpenAI's shape, as vLLM's are.

Retrieval stacks (Dify, Open WebUI, LlamaIndex, LangChain) call these with a base URL. One
answer serves every caller: ``results`` sorted by ``relevance_score`` with each ``index`` and,
unless ``return_documents`` is false, the ``document``; ``usage`` (Jina's, vLLM's) and ``meta``
(Cohere's).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from hearth.api.deps import REQUIRE_KEY, CallDep, GatewayDep
from hearth.errors import InvalidRequest
from hearth.gateway import ranking
from hearth.inference.rerank import RerankRequest

router = APIRouter(tags=["Rerank"], dependencies=[REQUIRE_KEY])
PATHS = ("/v1/rerank", "/v2/rerank", "/rerank")  # the family table gives these OpenAI's errors
SCORE_PATHS = ("/score", "/v1/score")


class RerankBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send fields of their own providers

    model: str | None = None
    query: str = Field(min_length=1)
    documents: list[str | dict[str, Any]]
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = True
    rank_fields: list[str] | None = None  # Cohere v1: which field of an object document to rank by


class ScoreBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    text_1: str | list[str]
    text_2: str | list[str]


def _text(document: str | dict[str, Any], field: str, index: int) -> str:
    if isinstance(document, str):
        return document
    value = document.get(field)
    if not isinstance(value, str):
        raise InvalidRequest(
            f"documents[{index}] has no text in its {field!r} field", param=f"documents[{index}]"
        )
    return value


async def rerank(body: RerankBody, gateway: GatewayDep, call: CallDep) -> dict[str, Any]:
    field = (body.rank_fields or ["text"])[0]
    texts = tuple(_text(d, field, i) for i, d in enumerate(body.documents))
    request = RerankRequest(body.model, body.query, texts)
    result = await ranking.rerank(gateway, call, request)
    results = []
    for index in result.ranked(body.top_n):
        item: dict[str, Any] = {"index": index, "relevance_score": result.scores[index]}
        if body.return_documents:
            document = body.documents[index]
            item["document"] = {"text": document} if isinstance(document, str) else document
        results.append(item)
    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "object": "rerank",
        "model": body.model or result.model,
        "results": results,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
        "meta": {"billed_units": {"search_units": 1}},
    }


async def score(body: ScoreBody, gateway: GatewayDep, call: CallDep) -> dict[str, Any]:
    lefts = (body.text_1,) if isinstance(body.text_1, str) else tuple(body.text_1)
    rights = (body.text_2,) if isinstance(body.text_2, str) else tuple(body.text_2)
    result = await ranking.score(gateway, call, body.model, lefts, rights)
    return {
        "id": f"score-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": body.model or result.model,
        "data": [{"index": i, "object": "score", "score": s} for i, s in enumerate(result.scores)],
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    }


for _path in PATHS:
    router.add_api_route(_path, rerank, methods=["POST"], summary="Rerank documents against a query")
for _path in SCORE_PATHS:
    router.add_api_route(_path, score, methods=["POST"], summary="Score text pairs (vLLM's /score)")
