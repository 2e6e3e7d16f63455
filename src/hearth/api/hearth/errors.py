"""Hearth's own routes answer errors in OpenAI's envelope, the one their clients already parse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from hearth.api.openai.errors import CHAT_WORDS, OpenAIAdapter
from hearth.errors import Subject
from hearth.inference.types import Family

# The paths that are Hearth's own, among OpenAI's /v1 ones.
PREFIXES = ("/v1/classify", "/v1/usage", "/v1/tokenize", "/admin", "/ui")


class HearthAdapter(OpenAIAdapter):
    name: ClassVar[Family] = "hearth"
    words: ClassVar[Mapping[Subject, str]] = {**CHAT_WORDS, Subject.PROMPT: "prompt"}
    route_words: ClassVar[Mapping[str, Mapping[Subject, str]]] = {}


HEARTH = HearthAdapter()
