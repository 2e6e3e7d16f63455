"""OIP v2's error object, ``{"error": "..."}``, with the neutral error's status and ``Retry-After``.

The protocol defines no rate-limit headers, so none are sent beyond ``Retry-After``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hearth.api.adapter import FamilyAdapter
from hearth.errors import HearthError
from hearth.inference.types import Family


class OIPAdapter(FamilyAdapter):
    name: ClassVar[Family] = "oip"

    def error_body(self, error: HearthError) -> dict[str, Any]:
        return {"error": error.message}
