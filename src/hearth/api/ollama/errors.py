"""Ollama's error shape, ``{"error": "..."}``, with the status of the neutral error.

Ollama sends no rate-limit headers; ``Retry-After`` still goes on 429 and 503 answers (the
adapter base adds it). An unknown model is Ollama's 404 ``model 'NAME' not found``, naming the
model as the caller spelled it (tag included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

from hearth.api.adapter import FamilyAdapter
from hearth.errors import HearthError, ModelNotFound
from hearth.inference.types import Family


class OllamaAdapter(FamilyAdapter):
    name: ClassVar[Family] = "ollama"


def error_line(error: HearthError) -> dict[str, str]:
    """The body of an error, and the NDJSON line that ends a stream that failed mid-way."""
    return {"error": error.message}


@contextlib.contextmanager
def missing_model(name: str) -> Iterator[None]:
    """Inside this block an unknown model is reported as Ollama words it."""
    try:
        yield
    except ModelNotFound as exc:
        raise ModelNotFound(f"model '{name}' not found", param="model") from exc
