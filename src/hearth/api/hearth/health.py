"""Liveness (``/health``), readiness (``/ready``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hearth.api.deps import CatalogDep, ReadinessDep, services

router = APIRouter(tags=["Health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "not ready, with the reasons"}})
async def ready(readiness: ReadinessDep, catalog: CatalogDep) -> JSONResponse:
    reasons = await readiness.problems()
    if reasons:
        return JSONResponse(
            {"status": "not ready", "reasons": reasons}, status_code=503, headers={"Retry-After": "2"}
        )
    return JSONResponse({"status": "ready", "models": [e.spec.id for e in catalog.entries]})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(services(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
