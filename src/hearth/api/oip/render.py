"""Neutral results as OIP v2 responses: metadata, and inference outputs as JSON or binary tensors.

An output the caller asked for in binary (``binary_data``, or ``binary_data_output`` for all)
goes after the JSON header, whose length the ``Inference-Header-Content-Length`` header gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from starlette.responses import Response

from hearth import __version__
from hearth.api.oip import protocol as pm
from hearth.api.oip import signatures as sig
from hearth.api.oip.mapper import VERSION, Wanted
from hearth.api.oip.tensors import HEADER_LENGTH, pack_bytes, pack_fp32
from hearth.inference.events import ChoiceResult, ClassifyResult, EmbedResult
from hearth.inference.models import ModelView
from hearth.inference.speech import Transcript

EXTENSIONS = ["binary_tensor_data", "classification"]


@dataclass(frozen=True)
class Output:
    name: str
    datatype: pm.Datatype
    shape: list[int]
    values: np.ndarray | list[str]  # FP32 values, or BYTES elements (all of ours are text)


def server_metadata() -> pm.ServerMetadata:
    return pm.ServerMetadata(name="hearth", version=__version__, extensions=EXTENSIONS)


def model_metadata(name: str, view: ModelView) -> pm.ModelMetadata:
    inputs, outputs = sig.signature(view)
    return pm.ModelMetadata(
        name=name, versions=[VERSION], platform=view.backend, inputs=inputs, outputs=outputs
    )


def repository_index(views: Sequence[ModelView]) -> list[dict[str, str]]:
    """Triton's model repository index: every model the caller may use, and its state."""
    states = {"ready": "READY", "loading": "LOADING", "failed": "UNAVAILABLE"}
    return [{"name": v.id, "version": VERSION, "state": states.get(v.state, "UNAVAILABLE")} for v in views]


def embedding_outputs(result: EmbedResult, wanted: Sequence[Wanted]) -> list[tuple[Output, bool]]:
    vectors = result.vectors
    output = Output(sig.EMBEDDING, "FP32", list(vectors.shape), vectors)
    return [(output, w.binary) for w in wanted]


def classify_outputs(result: ClassifyResult, wanted: Sequence[Wanted]) -> list[tuple[Output, bool]]:
    predictions = result.predictions
    outputs: list[tuple[Output, bool]] = []
    for w in wanted:
        if w.classification:  # Triton's classification extension: "score:index:label" strings
            top = predictions[: w.classification]
            classes = [f"{p.confidence:f}:{p.index}:{p.label}" for p in top]
            outputs.append((Output(w.name, "BYTES", [1, len(classes)], classes), w.binary))
        elif w.name == sig.LABELS:
            outputs.append(
                (Output(w.name, "BYTES", [1, len(predictions)], [p.label for p in predictions]), w.binary)
            )
        else:
            scores = np.array([[p.confidence for p in predictions]], dtype=np.float32)
            outputs.append((Output(w.name, "FP32", list(scores.shape), scores), w.binary))
    return outputs


def transcript_outputs(transcript: Transcript, wanted: Sequence[Wanted]) -> list[tuple[Output, bool]]:
    return [(Output(sig.TEXT, "BYTES", [1], [transcript.text]), w.binary) for w in wanted]


def completion_outputs(
    choices: Sequence[ChoiceResult], wanted: Sequence[Wanted]
) -> list[tuple[Output, bool]]:
    return [(Output(sig.TEXT_OUTPUT, "BYTES", [1], [choices[0].text]), w.binary) for w in wanted]


def infer_response(
    model_name: str, request_id: str | None, outputs: Sequence[tuple[Output, bool]]
) -> Response:
    tensors: list[pm.ResponseOutput] = []
    blobs: list[bytes] = []
    for output, binary in outputs:
        if binary:
            blob = _pack(output)
            blobs.append(blob)
            tensor = pm.ResponseOutput.model_construct(
                name=output.name,
                shape=output.shape,
                datatype=output.datatype,
                parameters={"binary_data_size": len(blob)},
                data=None,
            )
        else:
            tensor = pm.ResponseOutput.model_construct(
                name=output.name,
                shape=output.shape,
                datatype=output.datatype,
                parameters=None,
                data=_json(output),
            )
        tensors.append(tensor)
    # Built without validation and serialised once: thousands of floats re-validated would cost
    # more than the model's forward pass.
    reply = pm.InferenceResponse.model_construct(
        model_name=model_name, model_version=VERSION, id=request_id, parameters=None, outputs=tensors
    )
    header = reply.model_dump_json(exclude_none=True).encode()
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(
        header + b"".join(blobs),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


def _json(output: Output) -> list[float] | list[str]:
    if isinstance(output.values, np.ndarray):
        values: list[float] = output.values.astype(float).ravel().tolist()
        return values
    return output.values


def _pack(output: Output) -> bytes:
    if isinstance(output.values, np.ndarray):
        return pack_fp32(output.values)
    return pack_bytes(v.encode() for v in output.values)
