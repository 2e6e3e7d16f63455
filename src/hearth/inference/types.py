"""Requests in neutral form: what a caller wants, whatever API family it spoke.

Where an error may need to point into the request, the family's mapper leaves ``origin`` (or
``param``): the place in the request, in the family's own words (``messages[2]``,
``tools[0].function.parameters``). The core passes it on untouched and never makes one up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
Family = Literal["openai", "anthropic", "ollama", "oip", "hearth"]
Dialect = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class Passthrough:
    """Request fields Hearth does not model, in the dialect the caller sent them: an upstream
    server of the same dialect gets them untouched (vLLM's ``chat_template_kwargs``, Anthropic's
    ``metadata``); any other model ignores them."""

    dialect: Dialect
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a message: decoded bytes, or a URL the gateway may fetch if allowed."""

    data: bytes | None = None
    url: str | None = None
    media_type: str | None = None
    origin: str | None = field(default=None, compare=False)  # where the request holds it (errors)


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as every family carries it on the wire (Anthropic as an object)


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # role "tool": which call this answers
    name: str | None = None
    origin: str | None = field(default=None, compare=False)  # where the request holds it (errors)

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))

    @classmethod
    def of(cls, role: Role, text: str) -> Message:
        return cls(role, (TextPart(text),))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)  # a JSON schema
    param: str | None = field(default=None, compare=False)  # where the request holds the schema (errors)


@dataclass(frozen=True, slots=True)
class NamedTool:
    name: str


ToolChoice = Literal["none", "auto", "required"] | NamedTool


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What the output must be: JSON of any shape, or JSON valid against ``schema``."""

    kind: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool = True
    param: str | None = field(default=None, compare=False)  # where the request holds it (errors)


@dataclass(frozen=True, slots=True)
class SamplingOptions:
    """Sampling as the caller asked; ``None`` means the family's (or the engine's) default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float | None = None
    logit_bias: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CachePrefix:
    """The part of a chat the caller asked to keep cached (Anthropic's last ``cache_control``
    breakpoint): the tools and messages up to it, and for how long."""

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...]
    ttl_s: float = 300.0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    sampling: SamplingOptions = SamplingOptions()
    n: int = 1
    stream: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None  # None: the caller did not say (see gateway/tools.py)
    output: OutputFormat | None = None
    # "auto" drops the oldest turns that do not fit the context; "disabled" refuses instead.
    truncation: Literal["disabled", "auto"] = "disabled"
    num_ctx: int | None = None  # Ollama's per-request context window: checked, never grown past the model's
    # The family's own defaults for what neither the caller nor the model's config sets.
    sampling_defaults: SamplingOptions | None = None
    keep_alive_s: float | None = None  # Ollama's: how long the model stays loaded after this (<0: forever)
    passthrough: Passthrough | None = None
    cache_prefix: CachePrefix | None = None
    priority: int | None = None  # vLLM's: lower is served first (gateway/priority.py)
    # OpenAI's prompt_cache_key: requests sharing it share a cache (a hint, never a refusal).
    cache_key: str | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompts: tuple[str | tuple[int, ...], ...]
    sampling: SamplingOptions = SamplingOptions()
    n: int = 1
    stream: bool = False
    output: OutputFormat | None = None
    raw: bool = True  # False: Ollama's /api/generate without ``raw`` applies the chat template
    sampling_defaults: SamplingOptions | None = None
    num_ctx: int | None = None
    keep_alive_s: float | None = None
    # With ``raw=False`` only: a system turn before the prompt, and images in its user turn.
    system: str | None = None
    images: tuple[ImagePart, ...] = ()
    passthrough: Passthrough | None = None
    priority: int | None = None  # vLLM's: lower is served first (gateway/priority.py)


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    model: str
    texts: tuple[str, ...]
    dimensions: int | None = None
    truncate: bool = False  # Ollama truncates over-long inputs by default; OpenAI refuses them
    keep_alive_s: float | None = None


@dataclass(frozen=True, slots=True)
class ClassifyRequest:
    image: bytes
    model: str | None = None  # None: the first image-classification model configured
    top_k: int = 5
