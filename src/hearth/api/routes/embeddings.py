"""OpenAI ``POST /v1/embeddings``."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response

from hearth.api.deps import REQUIRE_KEY, CallDep
from hearth.engines.base import EmbeddingEngine
from hearth.errors import InvalidRequest
from hearth.protocol import openai as oa

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[REQUIRE_KEY])


@router.post("/embeddings", response_model=oa.EmbeddingResponse)
async def embeddings(body: oa.EmbeddingRequest, call: CallDep) -> Response:
    gateway, ctx = call.gateway, call.ctx
    engine = gateway.engine(ctx, body.model, EmbeddingEngine)
    result = await engine.embed(body.texts())
    dims = result.vectors.shape[1]
    if body.dimensions not in (None, dims):
        raise InvalidRequest(f"this model only produces {dims} dimensions", param="dimensions")
    ctx.prompt_tokens = sum(result.token_counts)
    data = [
        oa.EmbeddingData.model_construct(
            index=i, embedding=_encode(v, body.encoding_format), object="embedding"
        )
        for i, v in enumerate(result.vectors)
    ]
    usage = oa.EmbeddingUsage(prompt_tokens=ctx.prompt_tokens, total_tokens=ctx.prompt_tokens)
    # Serialised once here: re-validating thousands of floats through response_model costs
    # more than the forward pass of a short text.
    reply = oa.EmbeddingResponse.model_construct(data=data, model=body.model, usage=usage, object="list")
    return Response(reply.model_dump_json(), media_type="application/json")


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as the OpenAI SDKs decode it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    floats: list[float] = vector.astype(float).tolist()
    return floats
