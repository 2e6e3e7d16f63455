"""The tensors each kind of model takes and gives over OIP v2: names, datatypes and shapes.

The first dimension is the batch: N texts give N embeddings; an image request holds one image.
A chat model follows the Triton generate / vLLM-backend convention (``text_input`` in,
``text_output`` out), as a plain-text completion.
"""

from __future__ import annotations

from typing import Any

from hearth.api.oip.protocol import MetadataTensor
from hearth.inference.models import ModelView

TEXT, EMBEDDING = "text", "embedding"
IMAGE, LABELS, SCORES = "image", "labels", "scores"
TEXT_INPUT, TEXT_OUTPUT = "text_input", "text_output"
AUDIO = "audio"  # speech to text: one file's bytes in, its transcript out as ``text``

OUTPUTS = {
    "embedding": (EMBEDDING,),
    "image-classification": (LABELS, SCORES),
    "chat": (TEXT_OUTPUT,),
    "speech-to-text": (TEXT,),
}


def _extra(view: ModelView, key: str) -> int:
    extra: Any = view.details.get("extra") or {}
    value = extra.get(key) if isinstance(extra, dict) else None
    return value if isinstance(value, int) and value > 0 else -1  # unknown until the model loads


def signature(view: ModelView) -> tuple[list[MetadataTensor], list[MetadataTensor]]:
    """The model's input and output tensors, as the model metadata route lists them."""
    if view.kind == "embedding":
        return (
            [MetadataTensor(name=TEXT, datatype="BYTES", shape=[-1])],
            [MetadataTensor(name=EMBEDDING, datatype="FP32", shape=[-1, _extra(view, "dimensions")])],
        )
    if view.kind == "image-classification":
        return (
            [MetadataTensor(name=IMAGE, datatype="BYTES", shape=[1])],
            [
                MetadataTensor(name=LABELS, datatype="BYTES", shape=[1, -1]),
                MetadataTensor(name=SCORES, datatype="FP32", shape=[1, -1]),
            ],
        )
    if view.kind == "speech-to-text":
        return (
            [MetadataTensor(name=AUDIO, datatype="BYTES", shape=[1])],
            [MetadataTensor(name=TEXT, datatype="BYTES", shape=[1])],
        )
    return (
        [MetadataTensor(name=TEXT_INPUT, datatype="BYTES", shape=[1])],
        [MetadataTensor(name=TEXT_OUTPUT, datatype="BYTES", shape=[1])],
    )
