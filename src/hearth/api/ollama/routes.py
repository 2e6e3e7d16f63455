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
from hearth.api.deps import READS_STATE_ROUTE, REQUIRE_KEY, CallDep, CatalogDep, GatewayDep
from hearth.api.ollama import mapper, models, render
from hearth.api.ollama import protocol as ol
from hearth.api.ollama.errors import as_named
from hearth.api.serving import generated
from hearth.api.sse import NDJSON
from hearth.errors import InvalidRequest
from hearth.gateway.call import Call
from hearth.gateway.catalog import Catalog

router = APIRouter(prefix="/api", tags=["Ollama"], dependencies=[REQUIRE_KEY])
public = APIRouter(prefix="/api", tags=["Ollama"])
_NDJSON: dict[int | str, dict[str, Any]] = {200: {"content": {"application/x-ndjson": {}}}}


async def _load_or_unload(
    catalog: Catalog, call: Call, body: ol.ChatRequest | ol.GenerateRequest, kind: str, verb: str
) -> Response | None:
    """Ollama's requests that generate nothing: an empty one with ``keep_alive: 0`` unloads the
    model, any other empty one loads it (after the same capability check a request would get)."""
    if not mapper.is_load_only(body):
        return None
    name, chat = mapper.model_name(body.model), isinstance(body, ol.ChatRequest)
    keep_alive = mapper.keep_alive(body.keep_alive)
    if keep_alive == 0:
        await catalog.unload(call, name)
        return render.loaded(body.model, chat, "unload")
    models.require_kind(catalog.get(call, name), body.model, kind, verb)
    models.require_ready(await catalog.load(call, name, keep_alive))
    return render.loaded(body.model, chat)


@router.post("/chat", responses=_NDJSON)
async def chat(
    body: ol.ChatRequest, request: Request, gateway: GatewayDep, catalog: CatalogDep, call: CallDep
) -> Response:
    with as_named(body.model):
        if (answered := await _load_or_unload(catalog, call, body, "chat", "chat")) is not None:
            return answered
        return await generated(
            request,
            gateway.chat(call, mapper.chat_request(body)),
            streaming=(lambda stream: render.chat_stream(body.model, stream)) if body.stream else None,
            whole=lambda stream, results: render.chat_response(body.model, stream, results[0]),
            media_type=NDJSON,
        )


@router.post("/generate", responses=_NDJSON)
async def generate(
    body: ol.GenerateRequest, request: Request, gateway: GatewayDep, catalog: CatalogDep, call: CallDep
) -> Response:
    with as_named(body.model):
        if (answered := await _load_or_unload(catalog, call, body, "chat", "generate")) is not None:
            return answered
        return await generated(
            request,
            gateway.complete(call, mapper.generate_request(body)),
            streaming=(lambda stream: render.generate_stream(body.model, stream)) if body.stream else None,
            whole=lambda stream, results: render.generate_response(body.model, stream, results[0]),
            media_type=NDJSON,
        )


async def _load_embedding_model(catalog: Catalog, call: Call, name: str, keep_alive_s: float | None) -> None:
    """An empty input loads the model and embeds nothing, as in Ollama."""
    model = mapper.model_name(name)
    models.require_kind(catalog.get(call, model), name, "embedding", "embedding")
    models.require_ready(await catalog.load(call, model, keep_alive_s))


@router.post("/embed")
async def embed(body: ol.EmbedRequest, gateway: GatewayDep, catalog: CatalogDep, call: CallDep) -> Response:
    neutral = mapper.embed_request(body)
    with as_named(body.model):
        if not neutral.texts:
            await _load_embedding_model(catalog, call, body.model, neutral.keep_alive_s)
            return render.embed_response(body.model, call, None)
        result = await gateway.embed(call, neutral)
    return render.embed_response(body.model, call, result)


@router.post("/embeddings")
async def embeddings(
    body: ol.EmbeddingsRequest, gateway: GatewayDep, catalog: CatalogDep, call: CallDep
) -> Response:
    neutral = mapper.embeddings_request(body)
    with as_named(body.model):
        if not neutral.texts:
            await _load_embedding_model(catalog, call, body.model, neutral.keep_alive_s)
            return render.embeddings_response(None)
        result = await gateway.embed(call, neutral)
    return render.embeddings_response(result)


@router.get("/tags", response_model=ol.ListResponse, openapi_extra=READS_STATE_ROUTE)
@router.head("/tags", include_in_schema=False)  # Ollama answers HEAD here too
async def tags(catalog: CatalogDep, call: CallDep) -> ol.ListResponse:
    return models.tags(catalog.visible(call))


@router.post("/show", openapi_extra=READS_STATE_ROUTE)
async def show(body: ol.ShowRequest, catalog: CatalogDep, call: CallDep) -> JSONResponse:
    name = body.model or body.name
    if not name:
        raise InvalidRequest("model is required", param="model")
    with as_named(name):
        view = models.served(catalog.get(call, mapper.model_name(name)), name)
    return JSONResponse(models.show(view).model_dump(exclude_none=True))


@router.get("/ps", response_model=ol.ProcessResponse, openapi_extra=READS_STATE_ROUTE)
async def ps(catalog: CatalogDep, call: CallDep) -> ol.ProcessResponse:
    return models.ps(catalog.visible(call))


@public.get("/version", response_model=ol.VersionResponse, openapi_extra={"security": []})
@public.head("/version", include_in_schema=False)
async def version() -> ol.VersionResponse:
    return ol.VersionResponse(version=__version__)
