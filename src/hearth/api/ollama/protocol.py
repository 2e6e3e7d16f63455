"""Ollama API shapes (docs.ollama.com/api): chat, generate, embed, embeddings, tags, show, ps. Data only.

Requests accept unknown fields and unknown ``options``, as Ollama does (it logs and ignores
them); fields we know but cannot honour are refused by the mapper with a 400 naming them.
Responses carry exactly the fields Ollama sends; the streaming chunks and the final ``done``
object share one model, with the final-only fields left out of the chunks.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ModelName = Field(min_length=1, max_length=256)


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- requests -----------------------------------------------------------------------------------


class Options(_Request):
    """The runtime options Hearth honours; every other Ollama option is accepted and ignored."""

    num_predict: int | None = None  # -1 (and any value <= 0): until the context is full
    num_ctx: int | None = Field(default=None, ge=0)  # 0: the model's own
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None  # -1: random
    stop: list[str] | None = None
    repeat_penalty: float | None = Field(default=None, gt=0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class FunctionCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)  # an object, not JSON text


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    function: FunctionCall


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = ""
    images: list[str] | None = None  # base64
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None  # role "tool": which tool answered
    tool_call_id: str | None = None
    thinking: str | None = None  # accepted on history, never sent to the model


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionSpec


Format = Literal["", "json"] | dict[str, Any] | None
KeepAlive = str | float | None
Think = bool | str | None


class ChatRequest(_Request):
    model: str = ModelName
    messages: list[Message] = Field(default_factory=list)  # empty: just load the model
    tools: list[ToolSpec] | None = None
    format: Format = None
    options: Options | None = None
    stream: bool = True
    keep_alive: KeepAlive = None
    think: Think = None
    truncate: bool | None = None  # default true: drop the oldest turns that do not fit
    logprobs: bool | None = None
    top_logprobs: int | None = None


class GenerateRequest(_Request):
    model: str = ModelName
    prompt: str | None = ""  # empty: just load the model
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None
    format: Format = None
    options: Options | None = None
    stream: bool = True
    keep_alive: KeepAlive = None
    think: Think = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class EmbedRequest(_Request):
    model: str = ModelName
    input: str | list[str] = ""
    truncate: bool = True  # Ollama's default: over-long inputs are cut to the model's context
    dimensions: int | None = Field(default=None, ge=1)
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class EmbeddingsRequest(_Request):
    model: str = ModelName
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class ShowRequest(_Request):
    model: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=256)  # the older spelling of ``model``
    verbose: bool | None = None


# --- generation responses -----------------------------------------------------------------------


class Metrics(BaseModel):
    """The final object's counts and timings; every duration is in nanoseconds."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    tool_calls: list[ToolCall] | None = None


class ChatChunk(BaseModel):
    model: str
    created_at: str  # RFC 3339, UTC
    message: AssistantMessage
    done: bool
    done_reason: str | None = None


class GenerateChunk(BaseModel):
    model: str
    created_at: str
    response: str
    done: bool
    done_reason: str | None = None


# --- embeddings -----------------------------------------------------------------------------------


class EmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class EmbeddingsResponse(BaseModel):
    embedding: list[float]


# --- models -------------------------------------------------------------------------------------


class ModelDetails(BaseModel):
    parent_model: str = ""
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ListModel(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class ListResponse(BaseModel):
    models: list[ListModel]


class ShowResponse(BaseModel):
    modelfile: str
    parameters: str
    template: str | None = None
    system: str | None = None  # the model's configured system prompt
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class ProcessModel(BaseModel):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int | None = None


class ProcessResponse(BaseModel):
    models: list[ProcessModel]


class VersionResponse(BaseModel):
    version: str
