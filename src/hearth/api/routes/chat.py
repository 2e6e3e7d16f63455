"""OpenAI ``POST /v1/chat/completions`` and ``POST /v1/completions``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from hearth.api import openai_render as render
from hearth.api.deps import REQUIRE_KEY, CallDep
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.sse import sse_response
from hearth.engines.base import ChatEngine
from hearth.gateway import generation as gen
from hearth.protocol import openai as oa

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[REQUIRE_KEY])

# With "stream": true the same routes answer with server-sent events instead of JSON.
_SSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "JSON, or SSE when streaming",
    }
}


@router.post("/chat/completions", response_model=oa.ChatCompletion, responses=_SSE)
async def chat_completions(
    body: oa.ChatCompletionRequest, request: Request, call: CallDep
) -> oa.ChatCompletion | StreamingResponse:
    gateway, ctx = call.gateway, call.ctx
    engine = gateway.engine(ctx, body.model, ChatEngine)
    ctx.stream = body.stream
    prompt = await gen.chat_prompt(engine, body.plain_messages())
    job = gen.plan(engine, [prompt] * body.n, body, chat=True)
    await gateway.reserve_tokens(ctx, job.worst_case_tokens)
    if body.stream:
        events = await cancel_on_disconnect(request, gen.PrimedStream(gen.stream_choices(job, ctx)).prime())
        return sse_response(render.chat_stream(body.model, body.n, events, ctx, body.include_usage))
    results = await cancel_on_disconnect(request, gen.collect(job, ctx))
    return render.chat_completion(body.model, results, ctx)


@router.post("/completions", response_model=oa.Completion, responses=_SSE)
async def completions(
    body: oa.CompletionRequest, request: Request, call: CallDep
) -> oa.Completion | StreamingResponse:
    gateway, ctx = call.gateway, call.ctx
    engine = gateway.engine(ctx, body.model, ChatEngine)
    ctx.stream = body.stream
    prompts = await gen.completion_prompts(engine, body.prompts())
    job = gen.plan(engine, [p for p in prompts for _ in range(body.n)], body)
    await gateway.reserve_tokens(ctx, job.worst_case_tokens)
    if body.stream:
        events = await cancel_on_disconnect(request, gen.PrimedStream(gen.stream_choices(job, ctx)).prime())
        return sse_response(render.completion_stream(body.model, events, ctx, body.include_usage))
    results = await cancel_on_disconnect(request, gen.collect(job, ctx))
    return render.completion(body.model, results, ctx)
