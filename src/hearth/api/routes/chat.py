"""OpenAI ``POST /v1/chat/completions`` and ``POST /v1/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from hearth.api import openai_render as render
from hearth.api.deps import ContextDep, RegistryDep
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.sse import sse_response
from hearth.engines.base import ChatEngine
from hearth.gateway import generation as gen
from hearth.protocol import openai as oa

router = APIRouter(prefix="/v1", tags=["OpenAI"])


@router.post("/chat/completions", response_model=oa.ChatCompletion)
async def chat_completions(
    body: oa.ChatCompletionRequest, request: Request, registry: RegistryDep, ctx: ContextDep
) -> oa.ChatCompletion | StreamingResponse:
    engine = registry.get(body.model, ChatEngine)
    ctx.model, ctx.stream = engine.spec.id, body.stream
    prompt = await gen.chat_prompt(engine, body.plain_messages())
    job = gen.plan(engine, [prompt] * body.n, body)
    if body.stream:
        events = await cancel_on_disconnect(request, gen.PrimedStream(gen.stream_choices(job, ctx)).prime())
        return sse_response(render.chat_stream(body.model, body.n, events, ctx, body.include_usage))
    results = await cancel_on_disconnect(request, gen.collect(job, ctx))
    return render.chat_completion(body.model, results, ctx)


@router.post("/completions", response_model=oa.Completion)
async def completions(
    body: oa.CompletionRequest, request: Request, registry: RegistryDep, ctx: ContextDep
) -> oa.Completion | StreamingResponse:
    engine = registry.get(body.model, ChatEngine)
    ctx.model, ctx.stream = engine.spec.id, body.stream
    prompts = await gen.completion_prompts(engine, body.prompts())
    job = gen.plan(engine, [p for p in prompts for _ in range(body.n)], body)
    if body.stream:
        events = await cancel_on_disconnect(request, gen.PrimedStream(gen.stream_choices(job, ctx)).prime())
        return sse_response(render.completion_stream(body.model, events, ctx, body.include_usage))
    results = await cancel_on_disconnect(request, gen.collect(job, ctx))
    return render.completion(body.model, results, ctx)
