"""Liveness (``/health``) and readiness (``/ready``) probes."""

from __future__ import annotations

import inspect

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hearth.api.deps import RegistryDep

router = APIRouter(tags=["Health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "not ready, with the reasons"}})
async def ready(request: Request, registry: RegistryDep) -> JSONResponse:
    reasons = registry.not_ready_reasons()
    checks = getattr(request.app.state, "readiness_checks", [])
    for check in checks:
        problem = check()
        if inspect.isawaitable(problem):
            problem = await problem
        if problem:
            reasons.append(problem)
    if reasons:
        return JSONResponse(
            {"status": "not ready", "reasons": reasons}, status_code=503, headers={"Retry-After": "2"}
        )
    return JSONResponse({"status": "ready", "models": [s.spec.id for s in registry.slots]})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, registry: RegistryDep) -> Response:
    ready = sum(1 for s in registry.slots if s.state == "ready")
    body = request.app.state.metrics.render(ready, request.app.state.gateway.ledger.pending)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
