"""``POST /v1/tokenize`` and ``/v1/detokenize``, as vLLM and llama.cpp's server offer them."""

from __future__ import annotations

from fastapi import APIRouter

from hearth.api.deps import REQUIRE_KEY, CallDep
from hearth.engines.base import ChatEngine
from hearth.gateway import generation as gen
from hearth.protocol import openai as oa

router = APIRouter(prefix="/v1", tags=["Tokens"], dependencies=[REQUIRE_KEY])


@router.post("/tokenize", response_model=oa.TokenizeResponse)
async def tokenize(body: oa.TokenizeRequest, call: CallDep) -> oa.TokenizeResponse:
    engine = call.gateway.engine(call.ctx, body.model, ChatEngine)
    if body.messages is not None:
        tokens = await gen.chat_prompt(engine, body.plain_messages())
    else:
        tokens = (await gen.completion_prompts(engine, [body.prompt or ""]))[0]
    return oa.TokenizeResponse(tokens=tokens, count=len(tokens), max_model_len=engine.context_length)
