"""Open Inference Protocol v2 (KServe / Triton) REST shapes. Data only.

Mirrors the spec's ``$metadata_server_response``, ``$metadata_model_response``,
``$inference_request`` / ``$inference_response`` and the error object. Tensor ``data`` is
left as JSON (flat or nested, row-major): its elements are checked against the datatype and
shape by the mapper, which knows what each model takes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
    "BYTES",
]
# ``$parameters``: string, number and boolean values, keyed by name.
Parameters = dict[str, Any]
Dim = Annotated[int, Field(ge=0)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- health and metadata ------------------------------------------------------------------------


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool
    error: str | None = None  # why not, when not


class ModelReady(BaseModel):
    name: str
    ready: bool
    error: str | None = None


class MetadataTensor(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 for a variable-size dimension")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


# --- inference ----------------------------------------------------------------------------------


class RequestInput(_Request):
    name: str = Field(min_length=1, max_length=256)
    shape: list[Dim] = Field(max_length=8)
    datatype: Datatype
    parameters: Parameters | None = None
    # Absent when the tensor travels in the binary section (``parameters.binary_data_size``).
    data: list[Any] | None = None


class RequestOutput(_Request):
    name: str = Field(min_length=1, max_length=256)
    parameters: Parameters | None = None


class InferenceRequest(_Request):
    id: str | None = Field(default=None, max_length=256)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=16)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=16)


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = None  # absent when sent in the binary section


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class ErrorResponse(BaseModel):
    error: str
