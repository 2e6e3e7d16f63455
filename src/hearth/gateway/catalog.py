"""The models a caller may see, with what each can do: every family's model listing uses it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from hearth.config import ModelKind
from hearth.engines.base import ChatEngine
from hearth.engines.registry import ModelRegistry, Slot
from hearth.errors import PermissionDenied
from hearth.gateway.call import Call

_CAPABILITIES = {
    ModelKind.CHAT: ["chat", "completions"],
    ModelKind.EMBEDDING: ["embeddings"],
    ModelKind.IMAGE_CLASSIFICATION: ["image-classification"],
}


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


class Catalog:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
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

    def view(self, slot: Slot) -> ModelView:
        spec = slot.spec
        details: dict[str, Any] = {"state": slot.state, "backend": spec.backend, "error": slot.error}
        capabilities = list(_CAPABILITIES[spec.kind])
        if spec.image_model is not None:
            # Not a vision-language model: images reach it as an image classifier's labels.
            capabilities.append("vision:classifier-labels")
            details["image_model"] = spec.image_model
        if slot.engine is not None:
            details.update(self._engine_details(spec.id, slot.engine, slot.engine.info))
            if isinstance(slot.engine, ChatEngine):
                capabilities.extend(slot.engine.extra_capabilities())
        return ModelView(
            id=spec.id,
            kind=spec.kind.value,
            backend=spec.backend,
            aliases=list(spec.aliases),
            description=spec.description,
            capabilities=capabilities,
            ready=slot.state == "ready",
            state=slot.state,
            created=self._created,
            error=slot.error,
            details=details,
            expires_in_s=slot.expires_in(),
            sampling=spec.sampling.model_dump(exclude_none=True),
            system_prompt=spec.system_prompt,
        )

    def visible(self, call: Call) -> list[ModelView]:
        key = call.key
        return [self.view(s) for s in self._registry.slots if key is None or key.allows_model(s.spec.id)]

    def get(self, call: Call, name: str) -> ModelView:
        spec = self._registry.spec(name)
        if call.key is not None and not call.key.allows_model(spec.id):
            raise PermissionDenied(f"this API key may not use the model {spec.id!r}", param="model")
        return self.view(self._registry.slot(spec.id))
