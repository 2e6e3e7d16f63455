"""Planning for upstream engines: the neutral request, resolved, as a ``RemoteJob``.

An upstream server renders the chat, counts the tokens and samples itself, so what the gateway
decides for it is what it decides for every model short of the prompt's tokens: the model's
system prompt, the sampling the caller left unset (the model's configured defaults, then the
calling family's: Ollama's differ from OpenAI's), and images it cannot take described by the
model's image model. Limits reserve an estimate of the prompt, and the upstream's own count
settles the usage row.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from hearth.config import SamplingDefaults
from hearth.engines.base import ConversationEngine
from hearth.errors import Subject, Unsupported
from hearth.gateway.jobs import RemoteJob
from hearth.inference.types import ChatRequest, CompletionRequest, Message, SamplingOptions


def resolved_sampling(
    options: SamplingOptions, model: SamplingDefaults, family: SamplingOptions | None
) -> SamplingOptions:
    """What the caller set, else the model's configured default, else the family's; else unset
    (the upstream's own default)."""
    f = family or SamplingOptions()

    def first(*values: float | int | None) -> float | int | None:
        return next((v for v in values if v is not None), None)

    return dataclasses.replace(
        options,
        temperature=first(options.temperature, model.temperature, f.temperature),
        top_p=first(options.top_p, model.top_p, f.top_p),
        top_k=first(options.top_k, model.top_k, f.top_k),  # type: ignore[arg-type]
        min_p=first(options.min_p, model.min_p, f.min_p),
        repeat_penalty=first(options.repeat_penalty, model.repeat_penalty, f.repeat_penalty),
    )


def _chars(messages: Sequence[Message], request: ChatRequest) -> int:
    tools = sum(len(json.dumps(dict(t.parameters))) + len(t.description) for t in request.tools)
    return sum(len(m.text) + sum(len(c.arguments) for c in m.tool_calls) for m in messages) + tools


def chat_job(engine: ConversationEngine, request: ChatRequest, messages: Sequence[Message]) -> RemoteJob:
    sampling = resolved_sampling(request.sampling, engine.spec.sampling, request.sampling_defaults)
    upstream = dataclasses.replace(request, messages=tuple(messages), sampling=sampling)
    return RemoteJob(
        start=lambda: engine.converse(upstream),
        prompt_chars=_chars(messages, request),
        max_tokens=sampling.max_tokens,
        choices=request.n,
        caller_stops=request.sampling.stop,
        context_length=engine.context_length,
    )


def completion_job(engine: ConversationEngine, request: CompletionRequest) -> RemoteJob:
    """Raw prompts continued as they are (OpenAI's completions, Ollama's ``raw``)."""
    if any(not isinstance(p, str) for p in request.prompts):
        raise Unsupported("an upstream model takes prompts as text, not token ids", subject=Subject.PROMPT)
    if request.images:
        raise Unsupported("images need the chat template: send them without raw", subject=Subject.IMAGES)
    sampling = resolved_sampling(request.sampling, engine.spec.sampling, request.sampling_defaults)
    upstream = dataclasses.replace(request, sampling=sampling)
    return RemoteJob(
        start=lambda: engine.complete(upstream),
        prompt_chars=sum(len(p) for p in request.prompts if isinstance(p, str)),
        max_tokens=sampling.max_tokens,
        choices=request.n * len(request.prompts),
        caller_stops=request.sampling.stop,
        context_length=engine.context_length,
    )
