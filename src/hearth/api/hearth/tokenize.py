"""``POST /v1/tokenize``, as vLLM and llama.cpp's server offer it."""

from __future__ import annotations

from fastapi import APIRouter

from hearth.api.deps import REQUIRE_KEY, CallDep, GatewayDep
from hearth.api.openai import mapper
from hearth.api.openai import protocol as oa

router = APIRouter(prefix="/v1", tags=["Tokens"], dependencies=[REQUIRE_KEY])


@router.post("/tokenize", response_model=oa.TokenizeResponse)
async def tokenize(body: oa.TokenizeRequest, gateway: GatewayDep, call: CallDep) -> oa.TokenizeResponse:
    messages = None if body.messages is None else mapper.messages(body.messages)
    tokens, context = await gateway.tokenize(call, body.model, text=body.prompt, messages=messages)
    return oa.TokenizeResponse(tokens=tokens, count=len(tokens), max_model_len=context)
