"""Which API family a path belongs to, and so whose error shape and headers it gets."""

from __future__ import annotations

from hearth.api.adapter import FamilyAdapter
from hearth.api.openai.errors import HearthAdapter, OpenAIAdapter

OPENAI = OpenAIAdapter()
HEARTH = HearthAdapter()
_HEARTH_PATHS = ("/v1/classify", "/v1/usage", "/v1/tokenize", "/v1/detokenize", "/admin")
_BY_PREFIX: list[tuple[str, FamilyAdapter]] = []


def register(prefix: str, adapter: FamilyAdapter) -> None:
    """A family package claims the paths under ``prefix`` (longest prefixes are tried first)."""
    _BY_PREFIX.append((prefix, adapter))
    _BY_PREFIX.sort(key=lambda item: -len(item[0]))


def family_for_path(path: str) -> FamilyAdapter:
    for prefix, adapter in _BY_PREFIX:
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
            return adapter
    if path.startswith(_HEARTH_PATHS):
        return HEARTH
    return OPENAI
