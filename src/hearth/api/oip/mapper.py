"""OIP v2 inference requests to the neutral ones, and which outputs the caller asked for.

Every check of a tensor against what the model takes (its name, datatype, shape, and the count
and type of its elements) is here, so a bad tensor is a 400 that says what was expected.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from hearth.api.images import image_from_base64
from hearth.api.oip import protocol as pm
from hearth.api.oip import signatures as sig
from hearth.api.oip.tensors import element_count, flatten, split_body, unpack_bytes
from hearth.errors import InvalidRequest, NotFound, Unsupported
from hearth.inference.speech import TranscribeRequest
from hearth.inference.types import ClassifyRequest, CompletionRequest, EmbedRequest, SamplingOptions

VERSION = "1"  # Hearth serves one version of each model; rollouts route by alias instead
MAX_TEXTS = 2048
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any] | None = None  # the JSON elements, flattened row-major
    raw: bytes | None = None  # the tensor's bytes from the binary section


@dataclass(frozen=True)
class Wanted:
    """An output the caller asked for, and how: binary or JSON, classification top-N or not."""

    name: str
    binary: bool
    classification: int | None = None


@dataclass(frozen=True)
class Infer:
    id: str | None
    parameters: Mapping[str, Any]
    inputs: Mapping[str, Tensor]
    outputs: Sequence[pm.RequestOutput] | None
    binary_output: bool


def check_version(name: str, version: str | None) -> None:
    if version not in (None, "", VERSION):
        raise NotFound(f"the model {name!r} has no version {version!r}; it has version {VERSION}")


def read(body: bytes, header_length: str | None) -> Infer:
    """Parse the JSON header and give each binary input its bytes from the binary section."""
    header, binary = split_body(body, header_length)
    try:
        request = pm.InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    inputs: dict[str, Tensor] = {}
    offset = 0
    for tensor in request.inputs:
        where = f"input {tensor.name!r}"
        if tensor.name in inputs:
            raise InvalidRequest(f"{where} is given twice", param="inputs")
        params = tensor.parameters or {}
        if "shared_memory_region" in params:
            raise Unsupported("shared-memory tensors are not supported; send the data in the request")
        size = _int(params, "binary_data_size", where, low=0)
        if size is not None:
            raw = binary[offset : offset + size]
            if len(raw) != size:
                raise InvalidRequest(f"{where}: binary_data_size is {size} but the body holds fewer bytes")
            offset += size
            inputs[tensor.name] = Tensor(tensor.name, tensor.datatype, tuple(tensor.shape), raw=raw)
        elif tensor.data is None:
            raise InvalidRequest(f"{where} has no data (and no binary_data_size)", param="inputs")
        else:
            inputs[tensor.name] = Tensor(
                tensor.name, tensor.datatype, tuple(tensor.shape), flatten(tensor.data)
            )
    if offset != len(binary):
        raise InvalidRequest(
            f"the body has {len(binary) - offset} bytes after the JSON header that no input's "
            "binary_data_size accounts for"
        )
    parameters = request.parameters or {}
    binary_output = _flag(parameters, "binary_data_output", "parameters", default=False)
    return Infer(request.id, parameters, inputs, request.outputs, binary_output)


def wanted_outputs(infer: Infer, kind: str) -> list[Wanted]:
    """The outputs to send, in order: all of the model's by default, or the ones named."""
    available = sig.OUTPUTS.get(kind, ())
    if infer.outputs is None:
        return [Wanted(name, infer.binary_output) for name in available]
    wanted: list[Wanted] = []
    for index, output in enumerate(infer.outputs):
        where = f"output {output.name!r}"
        if output.name not in available:
            raise InvalidRequest(
                f"unknown {where}: this model's outputs are {', '.join(map(repr, available))}",
                param=f"outputs[{index}].name",
            )
        if output.name in (w.name for w in wanted):
            raise InvalidRequest(f"{where} is requested twice", param=f"outputs[{index}].name")
        params = output.parameters or {}
        if "shared_memory_region" in params:
            raise Unsupported("shared-memory outputs are not supported")
        classification = _int(params, "classification", where, low=0) or None
        if classification is not None and kind != "image-classification":
            raise InvalidRequest(f"{where}: classification is only offered by image-classification models")
        binary = _flag(params, "binary_data", where, default=infer.binary_output)
        wanted.append(Wanted(output.name, binary, classification))
    return wanted


def embed_request(model: str, infer: Infer) -> EmbedRequest:
    tensor = _only_input(infer, sig.TEXT, ("BYTES",), "[N] or [N, 1]")
    count = _batch(tensor, "[N] or [N, 1]")
    if count == 0:
        raise InvalidRequest(f"input {sig.TEXT!r} must hold at least one text", param=sig.TEXT)
    if count > MAX_TEXTS:
        raise InvalidRequest(f"at most {MAX_TEXTS} texts per request", param=sig.TEXT)
    texts = tuple(_text(item, tensor.name) for item in _bytes_elements(tensor))
    truncate = _flag(infer.parameters, "truncate", "parameters", default=False)
    return EmbedRequest(model, texts, truncate=truncate)


def classify_request(model: str, infer: Infer, wanted: Sequence[Wanted]) -> ClassifyRequest:
    tensor = _only_input(infer, sig.IMAGE, ("BYTES", "UINT8"), "[1] (BYTES) or [L] (UINT8)")
    if tensor.datatype == "UINT8":
        image = _uint8_image(tensor)
    else:
        if _batch(tensor, "[1] or [1, 1]") != 1:
            raise InvalidRequest(
                f"input {sig.IMAGE!r} must hold exactly one image (shape [1])", param=sig.IMAGE
            )
        (item,) = _bytes_elements(tensor)
        # JSON carries an image's bytes as base64 text (a data: URL works too).
        image = item if isinstance(item, bytes) else image_from_base64(item, sig.IMAGE).data or b""
    asked = _int(infer.parameters, "top_k", "parameters", low=1, high=1000)
    # A classification output needs its own count of classes; labels and scores get as many.
    counts = [w.classification for w in wanted if w.classification]
    top_k = max([asked or (1 if counts else DEFAULT_TOP_K), *counts])
    return ClassifyRequest(image, model, min(top_k, 1000))


def transcribe_request(model: str, infer: Infer) -> TranscribeRequest:
    """One audio file (any format FFmpeg reads) in ``audio``; ``parameters`` as OpenAI's fields."""
    tensor = _only_input(infer, sig.AUDIO, ("BYTES",), "[1] (BYTES)")
    if _batch(tensor, "[1] or [1, 1]") != 1:
        raise InvalidRequest(
            f"input {sig.AUDIO!r} must hold exactly one audio file (shape [1])", param=sig.AUDIO
        )
    (item,) = _bytes_elements(tensor)
    audio = item if isinstance(item, bytes) else _base64(item, sig.AUDIO)
    params = infer.parameters
    task = params.get("task", "transcribe")
    if task not in ("transcribe", "translate"):
        raise InvalidRequest("parameters.task must be 'transcribe' or 'translate'", param="task")
    language, prompt = params.get("language"), params.get("prompt")
    for name, value in (("language", language), ("prompt", prompt)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"parameters.{name} must be a string", param=name)
    return TranscribeRequest(
        model,
        audio,
        task="translate" if task == "translate" else "transcribe",
        language=None if task == "translate" else language,
        prompt=prompt,
        temperature=_float(params, "temperature", low=0, high=1) or 0.0,
        timestamps=False,
    )


def _base64(text: str, name: str) -> bytes:
    """JSON carries a file's bytes as base64 text."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            f"input {name!r} must be the file's bytes (binary) or base64 text", param=name
        ) from None


def completion_request(model: str, infer: Infer) -> CompletionRequest:
    """A chat model as Triton's generate convention has it: one prompt in, its completion out."""
    tensor = _only_input(infer, sig.TEXT_INPUT, ("BYTES",), "[1] or [1, 1]")
    if _batch(tensor, "[1] or [1, 1]") != 1:
        raise InvalidRequest(f"input {sig.TEXT_INPUT!r} must hold exactly one prompt", param=sig.TEXT_INPUT)
    (item,) = _bytes_elements(tensor)
    params = infer.parameters
    stop = params.get("stop")
    if stop is not None and not isinstance(stop, str):
        raise InvalidRequest("parameters.stop must be a string", param="stop")
    sampling = SamplingOptions(
        max_tokens=_int(params, "max_tokens", "parameters", low=1),
        temperature=_float(params, "temperature", low=0, high=2),
        top_p=_float(params, "top_p", low=0, high=1, open_low=True),
        top_k=_int(params, "top_k", "parameters", low=0),
        seed=_int(params, "seed", "parameters"),
        stop=(stop,) if stop else (),
    )
    return CompletionRequest(model, (_text(item, tensor.name),), sampling, raw=True)


# --- tensors ------------------------------------------------------------------------------------


def _only_input(infer: Infer, name: str, datatypes: tuple[str, ...], shape: str) -> Tensor:
    tensor = infer.inputs.get(name)
    expected = f"{name!r} ({' or '.join(datatypes)}, shape {shape})"
    if tensor is None:
        raise InvalidRequest(f"missing input: this model takes {expected}", param="inputs")
    extra = sorted(set(infer.inputs) - {name})
    if extra:
        raise InvalidRequest(
            f"unexpected input {extra[0]!r}: this model takes only {expected}", param="inputs"
        )
    if tensor.datatype not in datatypes:
        raise InvalidRequest(
            f"input {name!r} must be {' or '.join(datatypes)}, not {tensor.datatype}", param=name
        )
    return tensor


def _batch(tensor: Tensor, allowed: str) -> int:
    shape = tensor.shape
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return shape[0]
    raise InvalidRequest(
        f"input {tensor.name!r} must have shape {allowed}, not {list(shape)}", param=tensor.name
    )


def _bytes_elements(tensor: Tensor) -> list[bytes] | list[str]:
    where = f"input {tensor.name!r}"
    items: list[bytes] | list[str]
    if tensor.raw is not None:
        items = unpack_bytes(tensor.raw, where)
    else:
        data = tensor.data or []
        if not all(isinstance(x, str) for x in data):
            raise InvalidRequest(f"{where}: BYTES elements in JSON must be strings", param=tensor.name)
        items = data
    _count(tensor, len(items))
    return items


def _uint8_image(tensor: Tensor) -> bytes:
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)):
        raise InvalidRequest(
            f"a UINT8 input {tensor.name!r} holds one encoded file: shape [L] or [1, L], not {list(shape)}",
            param=tensor.name,
        )
    if tensor.raw is not None:
        _count(tensor, len(tensor.raw))
        return tensor.raw
    data = tensor.data or []
    if not all(type(x) is int and 0 <= x <= 255 for x in data):
        raise InvalidRequest(
            f"input {tensor.name!r}: UINT8 elements must be integers 0-255", param=tensor.name
        )
    _count(tensor, len(data))
    return bytes(data)


def _count(tensor: Tensor, given: int) -> None:
    expected = element_count(tensor.shape)
    if given != expected:
        raise InvalidRequest(
            f"input {tensor.name!r} has shape {list(tensor.shape)} ({expected} elements) but {given} "
            "elements of data",
            param=tensor.name,
        )


def _text(item: bytes | str, name: str) -> str:
    if isinstance(item, str):
        return item
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"input {name!r}: a text is not valid UTF-8", param=name) from exc


# --- parameters ---------------------------------------------------------------------------------


def _int(
    params: Mapping[str, Any], key: str, where: str, low: int | None = None, high: int | None = None
) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if type(value) is not int or (low is not None and value < low) or (high is not None and value > high):
        bounds = f" from {low}" if low is not None else ""
        bounds += f" to {high}" if high is not None else ""
        raise InvalidRequest(f"{where}: {key} must be an integer{bounds}", param=key)
    return value


def _float(
    params: Mapping[str, Any], key: str, low: float, high: float, *, open_low: bool = False
) -> float | None:
    value = params.get(key)
    if value is None:
        return None
    if type(value) not in (int, float) or not low <= value <= high or (open_low and value == low):
        bounds = f"above {low} and up to {high}" if open_low else f"from {low} to {high}"
        raise InvalidRequest(f"parameters: {key} must be a number {bounds}", param=key)
    return float(value)


def _flag(params: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where}: {key} must be true or false", param=key)
    return value


def _invalid(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return InvalidRequest(f"could not parse the JSON body of your request: {first['msg']}")
    loc = ".".join(str(p) for p in first["loc"])
    if not loc:
        return InvalidRequest("the request body must be a JSON object (an OIP v2 inference request)")
    message = "field required" if first["type"] == "missing" else first["msg"]
    return InvalidRequest(f"{loc}: {message}", param=loc)
