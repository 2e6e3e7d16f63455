"""Mapping pieces more than one family shares: role names, function tools, the default tool choice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from hearth.errors import InvalidRequest
from hearth.inference.types import Role, Tool, ToolChoice

# OpenAI's role names, as OpenAI, the Responses API and Ollama send them: "developer" is
# OpenAI's newer name for the system role.
ROLES: Mapping[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


class _Function(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def parameters(self) -> Mapping[str, Any] | None: ...


class _FunctionTool(Protocol):
    @property
    def function(self) -> _Function: ...


def function_tools(tools: Sequence[_FunctionTool] | None) -> tuple[Tool, ...]:
    """Tools in OpenAI's ``{"type": "function", "function": {...}}`` shape (OpenAI chat, Ollama)."""
    return tuple(
        Tool(
            t.function.name,
            t.function.description or "",
            t.function.parameters or {"type": "object"},
            param=f"tools[{i}].function.parameters",
        )
        for i, t in enumerate(tools or [])
    )


def default_choice(tools: Sequence[Tool]) -> ToolChoice:
    """What a request that names no tool choice gets: the model may call its tools, if any."""
    return "auto" if tools else "none"


def prompt_cache_key(body: BaseModel) -> str | None:
    """OpenAI's ``prompt_cache_key`` (chat and Responses), an unmodelled field: it also stays in
    the passthrough, so an OpenAI upstream receives it."""
    value = (body.model_extra or {}).get("prompt_cache_key")
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("prompt_cache_key must be a string", param="prompt_cache_key")
    return value
