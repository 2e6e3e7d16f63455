"""Which API family a path belongs to, and so whose error shape, words and headers it gets.

``app.py`` builds one table from the family packages' prefixes; the middleware and the error
handlers ask it. The longest matching prefix wins; anything else is OpenAI's (``/v1``).
"""

from __future__ import annotations

from collections.abc import Iterable

from hearth.api.adapter import FamilyAdapter


class Families:
    def __init__(self, default: FamilyAdapter, prefixes: Iterable[tuple[str, FamilyAdapter]]) -> None:
        self._default = default
        self._by_prefix = sorted(prefixes, key=lambda item: -len(item[0]))

    def for_path(self, path: str) -> FamilyAdapter:
        for prefix, adapter in self._by_prefix:
            if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
                return adapter
        return self._default
