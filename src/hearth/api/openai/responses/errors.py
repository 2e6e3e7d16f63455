"""The Responses API's errors: OpenAI's envelope, in this API's own field names.

The gateway speaks of the prompt and the output limit; a Responses caller sent ``input`` and
``max_output_tokens``, with structured output under ``text.format``. A conversation that no
longer fits is told how to make it fit (``truncation: "auto"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import ClassVar

from hearth.api.openai.errors import CHAT_WORDS, OpenAIAdapter
from hearth.errors import ContextLengthExceeded, Subject
from hearth.inference.responses import NewResponse

WORDS: Mapping[Subject, str] = {
    **CHAT_WORDS,
    Subject.PROMPT: "input",
    Subject.IMAGES: "input",
    Subject.OUTPUT_LIMIT: "max_output_tokens",
    Subject.OUTPUT_FORMAT: "text.format",
    Subject.STORE: "store",
    Subject.RESPONSE: "response_id",
    Subject.PREVIOUS_RESPONSE: "previous_response_id",
}


class ResponsesAdapter(OpenAIAdapter):
    words: ClassVar[Mapping[Subject, str]] = WORDS
    route_words: ClassVar[Mapping[str, Mapping[Subject, str]]] = {}


RESPONSES = ResponsesAdapter()


@contextlib.contextmanager
def how_to_fit(new: NewResponse) -> Iterator[None]:
    """A conversation over the context, without truncation, is told how to make it fit."""
    try:
        yield
    except ContextLengthExceeded as exc:
        if new.truncation == "auto" or exc.subject is not Subject.PROMPT:
            raise
        stored = (
            " (with previous_response_id, the whole stored conversation)" if new.previous_response_id else ""
        )
        raise ContextLengthExceeded(
            f"{exc.message}. The input{stored} no longer fits: set truncation to 'auto' to drop the "
            "oldest turns",
            subject=Subject.PROMPT,
        ) from exc
