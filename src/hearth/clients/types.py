"""Typed results. Unknown fields are kept (``extra="allow"``), so other providers' answers parse too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict

# What ``chat`` accepts: OpenAI-style message dicts, or one string for a single user turn.
Message = Mapping[str, Any]
Messages = str | Sequence[Message]


class GenerationParams(TypedDict, total=False):
    """Optional OpenAI sampling parameters for chat and completions (unset ones are not sent)."""

    max_tokens: int | None
    max_completion_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: str | list[str] | None
    seed: int | None
    n: int | None
    presence_penalty: float | None
    frequency_penalty: float | None
    logit_bias: dict[str, float] | None
    user: str | None
    extra_body: dict[str, Any] | None  # anything else, merged into the JSON body


class _Result(BaseModel):
    model_config = ConfigDict(extra="allow")


class Usage(_Result):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AssistantMessage(_Result):
    role: str = "assistant"
    content: str | None = None


class ChatChoice(_Result):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = None


class ChatCompletion(_Result):
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[ChatChoice]
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's answer."""
        return (self.choices[0].message.content or "") if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None


class CompletionChoice(_Result):
    index: int = 0
    text: str = ""
    finish_reason: str | None = None


class Completion(_Result):
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[CompletionChoice]
    usage: Usage | None = None

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None


class Embedding(_Result):
    index: int
    embedding: list[float]


class Embeddings(_Result):
    model: str = ""
    data: list[Embedding]
    usage: Usage | None = None

    @property
    def vectors(self) -> list[list[float]]:
        """One vector per input, in input order."""
        return [e.embedding for e in sorted(self.data, key=lambda e: e.index)]


class Prediction(_Result):
    label: str
    confidence: float
    index: int | None = None


class Classification(_Result):
    id: str = ""
    model: str = ""
    predictions: list[Prediction]
    usage: dict[str, Any] | None = None


class Model(_Result):
    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None
    # Hearth's additions; other providers leave them unset.
    kind: str | None = None
    aliases: list[str] = []
    ready: bool | None = None
    details: dict[str, Any] | None = None


class Budget(_Result):
    monthly_tokens: int | None = None
    used_this_month: int = 0
    remaining: int | None = None


class UsageReport(_Result):
    """``GET /v1/usage``: the calling key's usage, its settings and what remains of its budget."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    images: int = 0
    errors: int = 0
    models: list[dict[str, Any]] = []
    key: dict[str, Any] | None = None
    budget: Budget | None = None
