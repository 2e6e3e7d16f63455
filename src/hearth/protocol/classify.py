"""The course's image-classification route: ``POST /v1/classify``."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import BaseModel, Field

from hearth.errors import InvalidImage


class ClassifyRequest(BaseModel):
    model: str = Field(default="efficientnet-lite0", min_length=1, max_length=256)
    image: str = Field(min_length=1, description="base64 image bytes, or a data: URL")
    top_k: int = Field(default=5, ge=1, le=1000)

    def image_bytes(self) -> bytes:
        return decode_base64_image(self.image)


def decode_base64_image(value: str) -> bytes:
    if value.startswith("data:"):
        _, _, value = value.partition(",")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage("image is not valid base64", param="image") from exc


class ClassPrediction(BaseModel):
    label: str
    confidence: float
    index: int


class ClassifyUsage(BaseModel):
    images: int = 1
    prompt_tokens: int = 0
    total_tokens: int = 0


class ClassifyResponse(BaseModel):
    id: str
    object: Literal["classification"] = "classification"
    created: int
    model: str
    predictions: list[ClassPrediction]
    usage: ClassifyUsage
