"""OIP v2's error object, ``{"error": "..."}``, with the neutral error's status and ``Retry-After``.

The protocol defines no rate-limit headers, so none are sent beyond ``Retry-After``. Subjects
are named as the request holds them: input tensors and ``parameters``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from hearth.api.adapter import FamilyAdapter
from hearth.api.oip import signatures as sig
from hearth.errors import Subject
from hearth.inference.types import Family

WORDS: Mapping[Subject, str] = {
    Subject.PROMPT: f"input {sig.TEXT_INPUT!r}",
    Subject.OUTPUT_LIMIT: "parameters.max_tokens",
    Subject.INPUT: f"input {sig.TEXT!r}",
    Subject.IMAGE: f"input {sig.IMAGE!r}",
}


class OIPAdapter(FamilyAdapter):
    name: ClassVar[Family] = "oip"
    words: ClassVar[Mapping[Subject, str]] = WORDS


OIP = OIPAdapter()
