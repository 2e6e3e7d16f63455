"""Ollama routes under ``/api``: chat, generate, embed, embeddings, tags, show, ps and version.

Each route parses its body, calls the gateway with the neutral request, and renders the result.
``/api/version`` answers without a key, as Ollama's does, and like the other probes opens no call
(no ledger row per poll).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from hearth import __version__
from hearth.api.deps import REQUIRE_KEY, CallDep
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.ollama import mapper, models, render
from hearth.api.ollama import protocol as ol
from hearth.api.ollama.errors import missing_model
from hearth.api.sse import ndjson_response
from hearth.errors import InvalidRequest

router = APIRouter(prefix="/api", tags=["Ollama"], dependencies=[REQUIRE_KEY])
public = APIRouter(prefix="/api", tags=["Ollama"])
_NDJSON: dict[int | str, dict[str, Any]] = {200: {"content": {"application/x-ndjson": {}}}}


@router.post("/chat", responses=_NDJSON)
async def chat(body: ol.ChatRequest, request: Request, api: CallDep) -> Response:
    with missing_model(body.model):
        if mapper.is_load_only(body):
            view = api.gateway.catalog.get(api.call, mapper.model_name(body.model))
            models.require(view, body.model, "chat", "chat")
            return render.loaded(body.model, chat=True)
        stream = await cancel_on_disconnect(request, api.gateway.chat(api.call, mapper.chat_request(body)))
    if body.stream:
        return ndjson_response(render.chat_stream(body.model, stream))
    results = await cancel_on_disconnect(request, stream.collect())
    return render.chat_response(body.model, stream, results[0])


@router.post("/generate", responses=_NDJSON)
async def generate(body: ol.GenerateRequest, request: Request, api: CallDep) -> Response:
    with missing_model(body.model):
        if mapper.is_load_only(body):
            view = api.gateway.catalog.get(api.call, mapper.model_name(body.model))
            models.require(view, body.model, "chat", "generate")
            return render.loaded(body.model, chat=False)
        neutral = mapper.generate_request(body)
        stream = await cancel_on_disconnect(request, api.gateway.complete(api.call, neutral))
    if body.stream:
        return ndjson_response(render.generate_stream(body.model, stream))
    results = await cancel_on_disconnect(request, stream.collect())
    return render.generate_response(body.model, stream, results[0])


@router.post("/embed")
async def embed(body: ol.EmbedRequest, api: CallDep) -> Response:
    neutral = mapper.embed_request(body)
    with missing_model(body.model):
        if not neutral.texts:  # an empty input loads the model, as in Ollama
            models.require(
                api.gateway.catalog.get(api.call, neutral.model), body.model, "embedding", "embedding"
            )
            return render.embed_response(body.model, api.call, None)
        result = await api.gateway.embed(api.call, neutral)
    return render.embed_response(body.model, api.call, result)


@router.post("/embeddings")
async def embeddings(body: ol.EmbeddingsRequest, api: CallDep) -> Response:
    neutral = mapper.embeddings_request(body)
    with missing_model(body.model):
        if not neutral.texts:
            models.require(
                api.gateway.catalog.get(api.call, neutral.model), body.model, "embedding", "embedding"
            )
            return render.embeddings_response(None)
        result = await api.gateway.embed(api.call, neutral)
    return render.embeddings_response(result)


@router.get("/tags", response_model=ol.ListResponse)
@router.head("/tags", include_in_schema=False)  # Ollama answers HEAD here too
async def tags(api: CallDep) -> ol.ListResponse:
    return models.tags(api.gateway.catalog.visible(api.call))


@router.post("/show")
async def show(body: ol.ShowRequest, api: CallDep) -> JSONResponse:
    name = body.model or body.name
    if not name:
        raise InvalidRequest("model is required", param="model")
    with missing_model(name):
        view = models.served(api.gateway.catalog.get(api.call, mapper.model_name(name)), name)
    return JSONResponse(models.show(view).model_dump(exclude_none=True))


@router.get("/ps", response_model=ol.ProcessResponse)
async def ps(api: CallDep) -> ol.ProcessResponse:
    return models.ps(api.gateway.catalog.visible(api.call))


@public.get("/version", response_model=ol.VersionResponse, openapi_extra={"security": []})
@public.head("/version", include_in_schema=False)
async def version() -> ol.VersionResponse:
    return ol.VersionResponse(version=__version__)
