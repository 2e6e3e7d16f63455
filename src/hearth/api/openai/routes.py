"""OpenAI routes: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/models``.

Each route parses its body, calls the gateway with the neutral request, and renders the result.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from hearth.api.deps import READS_STATE_ROUTE, REQUIRE_KEY, CallDep, CatalogDep, GatewayDep
from hearth.api.openai import mapper, render
from hearth.api.openai import protocol as oa
from hearth.api.serving import generated
from hearth.inference.models import ModelView

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[REQUIRE_KEY])
_SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}


@router.post("/chat/completions", response_model=oa.ChatCompletion, responses=_SSE)
async def chat_completions(
    body: oa.ChatCompletionRequest, request: Request, gateway: GatewayDep, call: CallDep
) -> oa.ChatCompletion | StreamingResponse:
    usage = mapper.include_usage(body)
    request.state.words = mapper.words(body)
    return await generated(
        request,
        gateway.chat(call, mapper.chat_request(body)),
        streaming=(lambda stream: render.chat_stream(stream, usage)) if body.stream else None,
        whole=render.chat_completion,
    )


@router.post("/completions", response_model=oa.Completion, responses=_SSE)
async def completions(
    body: oa.CompletionRequest, request: Request, gateway: GatewayDep, call: CallDep
) -> oa.Completion | StreamingResponse:
    usage = mapper.include_usage(body)
    return await generated(
        request,
        gateway.complete(call, mapper.completion_request(body)),
        streaming=(lambda stream: render.completion_stream(stream, usage)) if body.stream else None,
        whole=render.completion,
    )


@router.post("/embeddings", response_model=oa.EmbeddingResponse)
async def embeddings(body: oa.EmbeddingRequest, gateway: GatewayDep, call: CallDep) -> Response:
    result = await gateway.embed(call, mapper.embed_request(body))
    # Serialised once here: re-validating thousands of floats through response_model costs
    # more than the forward pass of a short text.
    reply = render.embeddings(body, result)
    return Response(reply.model_dump_json(), media_type="application/json")


def _card(view: ModelView, details: bool) -> oa.ModelCard:
    return oa.ModelCard(
        id=view.id,
        created=view.created,
        kind=view.kind,
        aliases=view.aliases,
        description=view.description,
        capabilities=view.capabilities,
        ready=view.ready,
        state=view.state,
        details=view.details if details else None,
        sampling=view.sampling if details else None,
    )


@router.get("/models", response_model=oa.ModelList, openapi_extra=READS_STATE_ROUTE)
async def list_models(catalog: CatalogDep, call: CallDep) -> oa.ModelList:
    return oa.ModelList(data=[_card(v, details=False) for v in catalog.visible(call)])


@router.get("/models/{model_id:path}", response_model=oa.ModelCard, openapi_extra=READS_STATE_ROUTE)
async def get_model(model_id: str, catalog: CatalogDep, call: CallDep) -> oa.ModelCard:
    return _card(catalog.get(call, model_id), details=True)
