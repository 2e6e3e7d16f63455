"""``POST /v1/classify``: image classification, from a base64 JSON body or a multipart upload."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError

from hearth.api.deps import REQUIRE_KEY, CallDep, GatewayDep
from hearth.api.hearth import classify_protocol as cp
from hearth.api.ids import new_id, now
from hearth.api.images import image_from_base64
from hearth.errors import InvalidImage, InvalidRequest
from hearth.inference.types import ClassifyRequest

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
async def classify(request: Request, gateway: GatewayDep, call: CallDep) -> cp.ClassifyResponse:
    body = await _read(request)
    result = await gateway.classify(call, body)
    return cp.ClassifyResponse(
        id=new_id("cls"),
        created=now(),
        model=body.model or result.model,
        predictions=[
            cp.ClassPrediction(label=p.label, confidence=p.confidence, index=p.index)
            for p in result.predictions
        ],
        usage=cp.ClassifyUsage(images=1),
    )


async def _read(request: Request) -> ClassifyRequest:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("image") or form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidImage("the multipart body needs a file field named 'image'", param="image")
            data = await upload.read()
            fields = {k: form[k] for k in ("model", "top_k") if isinstance(form.get(k), str) and form[k]}
            body = cp.ClassifyRequest.model_validate({"image": "-", **fields})
            return ClassifyRequest(data, body.model, body.top_k)
        raw = await request.json()
        if not isinstance(raw, dict):
            raise InvalidRequest("the JSON body must be an object")
        body = cp.ClassifyRequest.model_validate(raw)
        return ClassifyRequest(image_from_base64(body.image, "image").data or b"", body.model, body.top_k)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"{param}: {first['msg']}", param=param) from exc
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise InvalidRequest(f"could not parse the JSON body of your request: {exc}") from exc
