"""OpenAI ``POST /v1/embeddings``."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Depends

from hearth.api.deps import ContextDep, GatewayDep, require_key
from hearth.engines.base import EmbeddingEngine
from hearth.errors import InvalidRequest
from hearth.protocol import openai as oa

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[Depends(require_key)])


@router.post("/embeddings", response_model=oa.EmbeddingResponse)
async def embeddings(body: oa.EmbeddingRequest, gateway: GatewayDep, ctx: ContextDep) -> oa.EmbeddingResponse:
    engine = gateway.engine(ctx, body.model, EmbeddingEngine)
    result = await engine.embed(body.texts())
    dims = result.vectors.shape[1]
    if body.dimensions not in (None, dims):
        raise InvalidRequest(f"this model only produces {dims} dimensions", param="dimensions")
    ctx.prompt_tokens = sum(result.token_counts)
    data = [
        oa.EmbeddingData(index=i, embedding=_encode(v, body.encoding_format))
        for i, v in enumerate(result.vectors)
    ]
    usage = oa.EmbeddingUsage(prompt_tokens=ctx.prompt_tokens, total_tokens=ctx.prompt_tokens)
    return oa.EmbeddingResponse(data=data, model=body.model, usage=usage)


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as the OpenAI SDKs decode it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
