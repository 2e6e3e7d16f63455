"""The models a caller may see, with what each can do: every family's model listing uses it.

A name is looked up through the resolver, so a rollout route's alias shows the model that
stands for it (its primary variant), under the same scope rules as a request to it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hearth.config import ModelKind
from hearth.engines.base import TextEngine
from hearth.engines.registry import ModelEntry, ModelRegistry
from hearth.gateway.call import Call
from hearth.gateway.resolver import Resolver
from hearth.inference.models import ModelView

_CAPABILITIES = {
    ModelKind.CHAT: ["chat", "completions"],
    # An embedding model also reranks, as a bi-encoder (hearth/inference/rerank.py).
    ModelKind.EMBEDDING: ["embeddings", "rerank:bi-encoder"],
    ModelKind.IMAGE_CLASSIFICATION: ["image-classification"],
    ModelKind.RERANK: ["rerank:cross-encoder"],
    ModelKind.SPEECH_TO_TEXT: ["audio.transcriptions", "audio.translations"],
    ModelKind.TEXT_TO_SPEECH: ["audio.speech"],
}


class Catalog:
    def __init__(self, registry: ModelRegistry, resolver: Resolver) -> None:
        self._registry = registry
        self._resolver = resolver
        self._created = int(time.time())
        # An engine's info is fixed once it has loaded; turning it into a dict (asdict deep-copies)
        # was a quarter of a /v1/models request's CPU. One entry per model id, replaced when the
        # model is loaded again, so an unloaded engine is never kept alive here.
        self._details: dict[str, tuple[object, dict[str, Any]]] = {}

    def _engine_details(self, model_id: str, engine: object, info: Any) -> dict[str, Any]:
        cached = self._details.get(model_id)
        if cached is None or cached[0] is not engine:
            fields = dataclasses.asdict(info())
            cached = (engine, {k: v for k, v in fields.items() if k not in {"id", "kind"}})
            self._details[model_id] = cached
        return cached[1]

    def view(self, entry: ModelEntry) -> ModelView:
        spec = entry.spec
        details: dict[str, Any] = {"state": entry.state, "backend": spec.backend, "error": entry.error}
        capabilities = list(_CAPABILITIES[spec.kind])
        if spec.load == "first-use":
            details["load"] = "first-use"  # "unloaded" until a request needs it
        if spec.image_model is not None:
            # Not a vision-language model: images reach it as an image classifier's labels.
            capabilities.append("vision:classifier-labels")
            details["image_model"] = spec.image_model
        if entry.engine is not None:
            details.update(self._engine_details(spec.id, entry.engine, entry.engine.info))
            if isinstance(entry.engine, TextEngine):
                capabilities.extend(entry.engine.extra_capabilities())
        return ModelView(
            id=spec.id,
            kind=spec.kind.value,
            backend=spec.backend,
            aliases=list(spec.aliases),
            description=spec.description,
            capabilities=capabilities,
            ready=entry.state == "ready",
            state=entry.state,
            created=self._created,
            error=entry.error,
            details=details,
            expires_in_s=entry.expires_in(),
            sampling=spec.sampling.model_dump(exclude_none=True),
            system_prompt=spec.system_prompt,
        )

    @property
    def entries(self) -> list[ModelEntry]:
        """Every model, whatever its state (operators' listings)."""
        return self._registry.entries

    def visible(self, call: Call) -> list[ModelView]:
        key = call.identity.key
        return [self.view(e) for e in self._registry.entries if key is None or key.allows_model(e.spec.id)]

    def get(self, call: Call, name: str) -> ModelView:
        """The model ``name`` stands for (an id, an alias or a route), if the caller may use it."""
        return self.view(self._resolver.target(call.identity.key, name).entry)

    async def load(self, call: Call, name: str, keep_alive_s: float | None = None) -> ModelView:
        """Have the model loaded, waiting for it, without generating (Ollama's empty request)."""
        target = await self._resolver.load(call.identity.key, name, keep_alive_s)
        self._resolver.note(call, target)
        return self.view(target.entry)

    async def unload(self, call: Call, name: str) -> ModelView:
        """Let the model go now; its next request loads it again (Ollama's ``keep_alive: 0``)."""
        target = await self._resolver.unload(call.identity.key, name)
        self._resolver.note(call, target)
        return self.view(target.entry)

    async def operator_load(self, name: str) -> ModelEntry:
        """The operator loads a model on this replica (one loaded on first use, or unloaded)."""
        return (await self._resolver.load(None, name)).entry

    async def operator_unload(self, name: str) -> ModelEntry:
        """The operator lets a model go on this replica; the next request that needs it loads it."""
        return (await self._resolver.unload(None, name)).entry

    def default_chat_model(self) -> str | None:
        """The chat model named ``default``, else the first chat model (what the web UI starts on)."""
        chats = [e.spec.id for e in self._registry.entries if e.spec.kind == ModelKind.CHAT]
        default = self._registry.names().get("default")
        return default if default in chats else (chats[0] if chats else None)
