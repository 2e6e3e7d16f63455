"""OIP v2 routes under ``/v2``: server metadata and health (no key, as probes call them), and
model metadata, readiness and inference (keyed, through the gateway like every family).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hearth.api.deps import (
    READS_STATE_ROUTE,
    REQUIRE_KEY,
    CallDep,
    CatalogDep,
    GatewayDep,
    ReadinessDep,
    SettingsDep,
    SpeechDep,
)
from hearth.api.disconnect import cancel_on_disconnect
from hearth.api.oip import mapper, render
from hearth.api.oip import protocol as pm
from hearth.api.oip.tensors import HEADER_LENGTH, decompress
from hearth.errors import Unsupported
from hearth.gateway.call import Call
from hearth.gateway.service import Gateway
from hearth.gateway.speech import Speech

public = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"])
keyed = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"], dependencies=[REQUIRE_KEY])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": pm.ErrorResponse} for code in (400, 401, 403, 404, 429, 503)
}


@public.get("", response_model=pm.ServerMetadata)
async def server_metadata() -> pm.ServerMetadata:
    return render.server_metadata()


@public.get("/health/live", response_model=pm.ServerLive)
async def live() -> pm.ServerLive:
    return pm.ServerLive(live=True)


@public.get("/health/ready", response_model=pm.ServerReady, responses={503: {"model": pm.ServerReady}})
async def ready(readiness: ReadinessDep) -> JSONResponse:
    problems = await readiness.problems()
    if problems:
        body = pm.ServerReady(ready=False, error="not ready: " + "; ".join(problems))
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "2"})
    return JSONResponse(pm.ServerReady(ready=True).model_dump(exclude_none=True))


@keyed.post("/repository/index", openapi_extra=READS_STATE_ROUTE)
async def repository_index(catalog: CatalogDep, call: CallDep) -> list[dict[str, str]]:
    return render.repository_index(catalog.visible(call))


# Decorators apply bottom-up, so each versioned path is registered before its plain one, whose
# ``{name:path}`` (model ids may hold a "/") would otherwise read "m/versions/1" as a model name.
@keyed.get(
    "/models/{name:path}/ready",
    response_model=pm.ModelReady,
    responses=_ERRORS,
    openapi_extra=READS_STATE_ROUTE,
)
@keyed.get(
    "/models/{name:path}/versions/{version}/ready",
    response_model=pm.ModelReady,
    responses=_ERRORS,
    openapi_extra=READS_STATE_ROUTE,
)
async def model_ready(
    name: str, catalog: CatalogDep, call: CallDep, version: str | None = None
) -> JSONResponse:
    view = catalog.get(call, name)
    mapper.check_version(name, version)
    if view.ready:
        return JSONResponse(pm.ModelReady(name=name, ready=True).model_dump(exclude_none=True))
    body = pm.ModelReady(name=name, ready=False, error=f"the model is {view.state}")
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "2"})


@keyed.post("/models/{name:path}/infer", response_model=pm.InferenceResponse, responses=_ERRORS)
@keyed.post(
    "/models/{name:path}/versions/{version}/infer", response_model=pm.InferenceResponse, responses=_ERRORS
)
async def infer(
    name: str,
    request: Request,
    gateway: GatewayDep,
    speech: SpeechDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    call: CallDep,
    version: str | None = None,
) -> Response:
    view = catalog.get(call, name)
    mapper.check_version(name, version)
    body = decompress(await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes)
    parsed = mapper.read(body, request.headers.get(HEADER_LENGTH))
    wanted = mapper.wanted_outputs(parsed, view.kind)
    outputs = await _run(gateway, speech, call, request, view.kind, name, parsed, wanted)
    return render.infer_response(name, parsed.id, outputs)


async def _run(
    gateway: Gateway,
    speech: Speech,
    call: Call,
    request: Request,
    kind: str,
    name: str,
    parsed: mapper.Infer,
    wanted: list[mapper.Wanted],
) -> list[tuple[render.Output, bool]]:
    """One gateway call, by the kind of model: an embedding, a classification, a transcript or a
    completion."""
    if kind == "rerank":
        raise Unsupported(f"the model {name!r} is a reranker: call /v1/rerank or /v2/rerank with it")
    if kind == "embedding":
        embedded = await gateway.embed(call, mapper.embed_request(name, parsed))
        return render.embedding_outputs(embedded, wanted)
    if kind == "image-classification":
        classified = await gateway.classify(call, mapper.classify_request(name, parsed, wanted))
        return render.classify_outputs(classified, wanted)
    if kind == "speech-to-text":
        transcript = await cancel_on_disconnect(
            request, speech.transcribe(call, mapper.transcribe_request(name, parsed))
        )
        return render.transcript_outputs(await cancel_on_disconnect(request, transcript.collect()), wanted)
    completion = mapper.completion_request(name, parsed)
    stream = await cancel_on_disconnect(request, gateway.complete(call, completion))
    return render.completion_outputs(await cancel_on_disconnect(request, stream.collect()), wanted)


@keyed.get(
    "/models/{name:path}", response_model=pm.ModelMetadata, responses=_ERRORS, openapi_extra=READS_STATE_ROUTE
)
@keyed.get(
    "/models/{name:path}/versions/{version}",
    response_model=pm.ModelMetadata,
    responses=_ERRORS,
    openapi_extra=READS_STATE_ROUTE,
)
async def model_metadata(
    name: str, catalog: CatalogDep, call: CallDep, version: str | None = None
) -> pm.ModelMetadata:
    view = catalog.get(call, name)
    mapper.check_version(name, version)
    return render.model_metadata(name, view)


router = APIRouter()
router.include_router(public)
router.include_router(keyed)
