"""The course's ``POST /v1/classify``: a base64 JSON body or a multipart upload."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import ValidationError

from hearth.api.deps import REQUIRE_KEY, CallDep, RegistryDep, SettingsDep
from hearth.config import ModelKind
from hearth.engines.base import ClassifierEngine
from hearth.engines.images import decode_image
from hearth.errors import InvalidImage, InvalidRequest
from hearth.protocol import classify as cp
from hearth.protocol.openai import new_id, now

router = APIRouter(prefix="/v1", tags=["Classification"], dependencies=[REQUIRE_KEY])

_FORM_BODY = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "binary"},
                "model": {"type": "string"},
                "top_k": {"type": "integer", "default": 5},
            },
        }
    },
    "application/json": {"schema": cp.ClassifyRequest.model_json_schema()},
}


@router.post(
    "/classify", response_model=cp.ClassifyResponse, openapi_extra={"requestBody": {"content": _FORM_BODY}}
)
async def classify(
    request: Request, registry: RegistryDep, settings: SettingsDep, call: CallDep
) -> cp.ClassifyResponse:
    gateway, ctx = call.gateway, call.ctx
    body, data = await _read(request, registry)
    engine = gateway.engine(ctx, body.model, ClassifierEngine)
    ctx.images = 1
    image = await asyncio.to_thread(decode_image, data, settings.max_image_pixels)
    predictions = await engine.classify(image, body.top_k)
    return cp.ClassifyResponse(
        id=new_id("cls"),
        created=now(),
        model=body.model,
        predictions=[
            cp.ClassPrediction(label=p.label, confidence=p.confidence, index=p.index) for p in predictions
        ],
        usage=cp.ClassifyUsage(images=1),
    )


async def _read(request: Request, registry: RegistryDep) -> tuple[cp.ClassifyRequest, bytes]:
    default = registry.first_of_kind(ModelKind.IMAGE_CLASSIFICATION)
    default_model = default.id if default else "efficientnet-lite0"
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("image") or form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidImage("the multipart body needs a file field named 'image'", param="image")
            data = await upload.read()
            fields = {k: form[k] for k in ("model", "top_k") if isinstance(form.get(k), str) and form[k]}
            body = cp.ClassifyRequest.model_validate({"model": default_model, "image": "-", **fields})
            return body, data
        raw = await request.json()
        if not isinstance(raw, dict):
            raise InvalidRequest("the JSON body must be an object")
        body = cp.ClassifyRequest.model_validate({"model": default_model, **raw})
        return body, body.image_bytes()
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"{param}: {first['msg']}", param=param) from exc
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise InvalidRequest(f"could not parse the JSON body of your request: {exc}") from exc
