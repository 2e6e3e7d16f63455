"""The image-classification route's protocol, ``POST /v1/classify``. Data only."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ClassifyRequest(BaseModel):
    model: str | None = Field(
        default=None, min_length=1, max_length=256, description="default: the first image model"
    )
    image: str = Field(min_length=1, description="base64 image bytes, or a data: URL")
    top_k: int = Field(default=5, ge=1, le=1000)


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
