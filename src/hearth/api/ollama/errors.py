"""Ollama's error shape, ``{"error": "..."}``, with the status of the neutral error.

Ollama sends no rate-limit headers; ``Retry-After`` still goes on 429 and 503 answers (the
adapter base adds it). An unknown model is Ollama's 404 ``model 'NAME' not found``, naming the
model as the caller spelled it (tag included), then the models the caller may use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import ClassVar

from hearth.api.adapter import FamilyAdapter
from hearth.errors import HearthError, ModelNotFound, Subject
from hearth.inference.types import Family

WORDS: Mapping[Subject, str] = {
    Subject.MODEL: "model",
    Subject.PROMPT: "messages",
    Subject.IMAGES: "images",
    Subject.OUTPUT_LIMIT: "options.num_predict",
    Subject.OUTPUT_FORMAT: "format",
    Subject.CONTEXT_WINDOW: "options.num_ctx",
    Subject.TOOLS: "tools",
    Subject.INPUT: "input",
    Subject.DIMENSIONS: "dimensions",
}


class OllamaAdapter(FamilyAdapter):
    name: ClassVar[Family] = "ollama"
    words: ClassVar[Mapping[Subject, str]] = WORDS
    route_words: ClassVar[Mapping[str, Mapping[Subject, str]]] = {
        "/api/generate": {Subject.PROMPT: "prompt"},
        "/api/embeddings": {Subject.INPUT: "prompt"},
    }

    def model_not_found(self, error: ModelNotFound) -> str:
        return f"model '{error.name}' not found"


OLLAMA = OllamaAdapter()


def error_line(error: HearthError, path: str) -> dict[str, str]:
    """The body of an error, and the NDJSON line that ends a stream that failed mid-way."""
    return {"error": OLLAMA.say(error, path).message}


@contextlib.contextmanager
def as_named(name: str) -> Iterator[None]:
    """Inside this block an unknown model is named as the caller spelled it (its tag included)."""
    try:
        yield
    except ModelNotFound as exc:
        raise ModelNotFound(name, exc.usable) from exc
