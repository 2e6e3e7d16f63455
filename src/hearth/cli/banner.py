"""What ``hearth serve`` prints once it is ready: where to go, what loaded, and how to get a key.

Short, on stdout, after every model has loaded and the database is up (never before), so the
first thing a new user reads is the next step. ``--quiet`` leaves it out; logs are separate.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hearth.config import ModelKind, Settings
from hearth.guide import browser_host, hearth_command, in_checkout, key_command

__all__ = [
    "LoadedModel",
    "browser_host",
    "degraded_notes",
    "hearth_command",
    "key_command",
    "print_banner",
    "render",
]

_KINDS = {
    ModelKind.CHAT: "chat",
    ModelKind.EMBEDDING: "embeddings",
    ModelKind.IMAGE_CLASSIFICATION: "image classification",
    ModelKind.RERANK: "rerank",
    ModelKind.SPEECH_TO_TEXT: "speech to text",
    ModelKind.TEXT_TO_SPEECH: "text to speech",
}


@dataclass(frozen=True)
class LoadedModel:
    id: str
    kind: ModelKind
    aliases: tuple[str, ...]
    error: str | None = None  # it failed to load
    on_first_use: bool = False  # not loaded yet: the first request that needs it loads it


def render(
    settings: Settings,
    models: Sequence[LoadedModel],
    *,
    admin_key_file: Path | None,
    problems: Sequence[str] = (),
    command: str | None = None,
    checkout: bool | None = None,
) -> str:
    command = command or hearth_command()
    checkout = in_checkout() if checkout is None else checkout
    base = f"http://{browser_host(settings.host)}:{settings.port}"
    lines = [f"Hearth is ready at {base}"]
    if _is_ip(settings.host) and ipaddress.ip_address(settings.host).is_unspecified:
        lines[0] += " (listening on all interfaces)"
    lines += [
        f"  playground    {base}/          API docs {base}/docs",
        f"  base URLs     OpenAI and Anthropic {base}/v1 · Ollama {base} · OIP v2 {base}/v2",
    ]
    loaded = [m for m in models if m.error is None]
    shown = ", ".join(_model_line(m) for m in loaded) or "none"
    lines.append(f"  models        {shown}")
    for model in models:
        if model.error is not None:
            lines.append(f"  ! {model.id} failed to load: {model.error}")
    if settings.no_auth:
        lines.append(
            "  auth          off (--no-auth): any program on this machine may call it, without a key"
        )
    else:
        lines.append("  auth          on: every API call needs a key (Authorization: Bearer hk-...)")
        make_key = key_command(settings, command)
        lines.append(f"  get a key     {make_key}")
        if checkout:
            lines.append(
                "                (or `make key NAME=me`; `make chat` makes one and opens a terminal chat)"
            )
        where = "HEARTH_ADMIN_KEY" if admin_key_file is None else f"{admin_key_file} (mode 600)"
        lines.append(f"  admin key     {where}: for /admin and signing in to the playground as operator")
    for problem in problems:
        lines.append(f"  ! {problem}")
    if problems or any(m.error for m in models):
        lines.append(f"  something is degraded: `{command} doctor` checks this machine and the models")
    return "\n".join(lines)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _model_line(model: LoadedModel) -> str:
    kind = _KINDS.get(model.kind, model.kind.value)
    default = ", default" if "default" in model.aliases else ""
    later = ", loads on first use" if model.on_first_use else ""
    return f"{model.id} ({kind}{default}{later})"


def degraded_notes(entries: Sequence[object]) -> list[str]:
    """What makes this server slower or smaller than it should be, beyond failed models."""
    notes = []
    if any(getattr(getattr(e, "spec", None), "backend", "") == "llama.cpp" for e in entries):
        try:
            from hearth.engines.llama import native

            if native.amx_compiled():
                notes.append(
                    "llama.cpp was compiled with AMX: GGUFs load without AMX and repacked weights (slower)"
                )
        except ImportError:
            notes.append("llama-cpp-python cannot be imported: GGUF models cannot load")
    available = _available_memory()
    if available is not None and available < LOW_MEMORY_BYTES:
        notes.append(f"only {available // 2**20} MiB of memory left with the models loaded")
    return notes


LOW_MEMORY_BYTES = 256 * 2**20


def _available_memory() -> int | None:
    from hearth.cli.doctor.probes import memory_info

    try:
        return memory_info().usable_bytes
    except OSError:
        return None


def print_banner(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
