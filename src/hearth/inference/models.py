"""What a served model looks like to the API families: the neutral card every model listing
renders (OpenAI's models, Ollama's tags and show, OIP's metadata). The gateway's catalog builds
them; the families only read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelView:
    id: str
    kind: str
    backend: str
    aliases: list[str]
    description: str
    capabilities: list[str]
    ready: bool
    state: str
    created: int
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    loaded_at: float | None = None
    expires_in_s: float | None = None  # keep_alive: seconds until an idle unload; None = stays loaded
    sampling: dict[str, float] = field(default_factory=dict)  # the model's configured defaults
    system_prompt: str | None = None
