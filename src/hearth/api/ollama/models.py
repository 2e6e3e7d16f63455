"""The model catalog as Ollama shows it: ``/api/tags``, ``/api/show`` and ``/api/ps``.

Only chat and embedding models are Ollama's to show: no Ollama route serves an image
classifier, so listing one would only invite requests that must fail. Names carry Ollama's
``:latest`` tag. ``digest`` identifies a model (its id, backend, size and quantization), it is not
a registry manifest's hash; ``modified_at`` is when this server's catalog came up.

``/api/ps`` lists the loaded models, the longest to stay first, with when each will be unloaded:
its keep-alive (the config's ``keep_alive_s`` or a request's ``keep_alive``) after its last
request. A model with none stays loaded; Ollama says that as it does for ``keep_alive: -1``, an
``expires_at`` of now plus the longest Go duration (about 292 years), which its CLI shows as
"Forever". A model that keep_alive (or ``keep_alive: 0``) let go is not listed; its next request
loads it again.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from hearth.api.ollama import protocol as ol
from hearth.api.ollama.mapper import DEFAULTS, tagged
from hearth.errors import InvalidRequest, ModelNotFound, NotReady
from hearth.inference.models import ModelView

OLLAMA_KINDS = {"chat": "completion", "embedding": "embedding"}
_QUANT_NAMES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
# Ollama's "forever": its keep_alive -1 becomes Go's largest time.Duration, in nanoseconds.
_FOREVER = timedelta(microseconds=(2**63 - 1) // 1000)


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def human_number(n: int) -> str:
    """A parameter count as Ollama writes it (``268.10M``, ``8.0B``), from its ``format.HumanNumber``."""
    for unit, scale in (("B", 1e9), ("M", 1e6)):
        if n >= scale:
            value = n / scale
            if value == int(value):
                return f"{int(value)}{unit}"
            return f"{value:.1f}{unit}" if unit == "B" else f"{value:.2f}{unit}"
    return f"{round(n / 1e3)}K" if n >= 1000 else str(n)


def shown(views: list[ModelView]) -> list[ModelView]:
    return [v for v in views if v.kind in OLLAMA_KINDS]


def served(view: ModelView, name: str) -> ModelView:
    """A model found through the catalog, refused in Ollama's words if Ollama cannot use it."""
    if view.kind not in OLLAMA_KINDS:
        raise ModelNotFound(name)
    return view


def require_kind(view: ModelView, name: str, kind: str, verb: str) -> None:
    """What Ollama checks before it loads a model for a request: the model can do this."""
    if view.kind != kind:
        raise InvalidRequest(f'"{name}" does not support {verb}', param="model", reason="model_not_supported")


def require_ready(view: ModelView) -> None:
    """A load that did not leave the model serving (it failed, or is being removed)."""
    if not view.ready:
        detail = f": {view.error}" if view.error else ""
        raise NotReady(f"the model {view.id!r} is {view.state}{detail}", retry_after=2)


def _architecture(view: ModelView) -> str:
    extra: dict[str, Any] = view.details.get("extra") or {}
    return str(extra.get("architecture") or view.backend)


def details(view: ModelView) -> ol.ModelDetails:
    family = _architecture(view)
    quantization = str(view.details.get("quantization") or "")
    return ol.ModelDetails(
        format="gguf" if view.backend == "llama.cpp" else view.backend,
        family=family,
        families=[family],
        parameter_size=human_number(int(view.details.get("parameters") or 0)),
        quantization_level=_QUANT_NAMES.get(quantization, quantization),
    )


def _size(view: ModelView) -> int:
    return int(view.details.get("file_size_bytes") or 0)


def digest(view: ModelView) -> str:
    key = f"{view.id}\0{view.backend}\0{_size(view)}\0{view.details.get('quantization')}"
    return hashlib.sha256(key.encode()).hexdigest()


def tags(views: list[ModelView]) -> ol.ListResponse:
    return ol.ListResponse(
        models=[
            ol.ListModel(
                name=tagged(v.id),
                model=tagged(v.id),
                modified_at=rfc3339(datetime.fromtimestamp(v.created, UTC)),
                size=_size(v),
                digest=digest(v),
                details=details(v),
            )
            for v in shown(views)
        ]
    )


def capabilities(view: ModelView) -> list[str]:
    caps = [OLLAMA_KINDS[view.kind]]
    caps.extend(c for c in ("tools", "vision") if c in view.capabilities)
    return caps


def _model_info(view: ModelView) -> dict[str, Any]:
    arch = _architecture(view)
    extra: dict[str, Any] = view.details.get("extra") or {}
    info: dict[str, Any] = {
        "general.architecture": arch,
        "general.parameter_count": view.details.get("parameters"),
        f"{arch}.context_length": view.details.get("context_length"),
        f"{arch}.embedding_length": extra.get("dimensions"),
    }
    return {k: v for k, v in info.items() if v is not None}


def _parameters(view: ModelView) -> dict[str, float | int]:
    """The sampling a caller gets for what it leaves unset: the model's own, else Ollama's."""
    if view.kind != "chat":
        return {}
    ctx = view.details.get("context_length")
    return {**DEFAULTS, **view.sampling, **({"num_ctx": int(ctx)} if ctx else {})}


def show(view: ModelView) -> ol.ShowResponse:
    params = sorted(_parameters(view).items())
    system = [f'SYSTEM """{view.system_prompt}"""\n'] if view.system_prompt else []
    return ol.ShowResponse(
        modelfile="".join(
            [
                f"# Modelfile generated by Hearth\nFROM {view.id}\n",
                *(f"PARAMETER {k} {v}\n" for k, v in params),
                *system,
            ]
        ),
        parameters="\n".join(f"{k:<30} {v}" for k, v in params),
        system=view.system_prompt,
        details=details(view),
        model_info=_model_info(view),
        capabilities=capabilities(view),
        modified_at=rfc3339(datetime.fromtimestamp(view.created, UTC)),
    )


def ps(views: list[ModelView]) -> ol.ProcessResponse:
    now = datetime.now(UTC)
    loaded = [
        (_FOREVER if v.expires_in_s is None else timedelta(seconds=v.expires_in_s), v) for v in shown(views)
    ]
    models = []
    for left, v in sorted((item for item in loaded if item[1].ready), key=lambda item: -item[0]):
        extra: dict[str, Any] = v.details.get("extra") or {}
        ctx = v.details.get("context_length")
        models.append(
            ol.ProcessModel(
                name=tagged(v.id),
                model=tagged(v.id),
                size=_size(v) + int(extra.get("kv_cache_bytes") or 0),  # weights plus KV cache
                digest=digest(v),
                details=details(v),
                expires_at=rfc3339(now + left),
                size_vram=0,  # CPU inference
                context_length=None if ctx is None else int(ctx),
            )
        )
    return ol.ProcessResponse(models=models)
