"""Turn a neutral request into engine work: prompt tokens, max_tokens, stops and N choices.

This is the policy every API family shares: the default max_tokens is the rest of the context,
a chat adds its template's end-of-turn strings to the caller's stops, and ``truncation="auto"``
drops the oldest turns that do not fit instead of refusing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from hearth.config import SamplingDefaults
from hearth.engines.base import ChatEngine, SamplingParams
from hearth.engines.constraints import Constraint
from hearth.errors import ContextLengthExceeded, Subject
from hearth.gateway.jobs import LocalJob
from hearth.gateway.tools import plan_tools
from hearth.inference.types import ChatRequest, Message, SamplingOptions, Tool

T = TypeVar("T")


def _render_and_tokenize(engine: ChatEngine, messages: Sequence[Message], tools: Sequence[Tool]) -> list[int]:
    return engine.tokenize(engine.render_chat(messages, tools))


def _truncated(
    engine: ChatEngine, messages: Sequence[Message], tools: Sequence[Tool], room: int
) -> tuple[list[int], int]:
    """The prompt with the fewest oldest turns dropped so that it leaves ``room`` tokens free.

    System turns are kept, and so is the last turn: a conversation is never cut to nothing.
    Returns the tokens and how many turns were dropped.
    """
    keep_system = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    limit = engine.context_length - room
    for dropped in range(len(turns)):
        tokens = _render_and_tokenize(engine, [*keep_system, *turns[dropped:]], tools)
        if len(tokens) <= limit:
            return tokens, dropped
    raise ContextLengthExceeded(
        f"even the last message alone does not fit this model's context of {engine.context_length} "
        f"tokens with room for the answer ({{output_limit}} {room})",
        subject=Subject.PROMPT,
    )


async def chat_prompt(
    engine: ChatEngine,
    messages: Sequence[Message],
    tools: Sequence[Tool] = (),
    *,
    truncate_for: int | None = None,
) -> list[int]:
    """Render and tokenize a chat (CPU work: off the event loop).

    With ``truncate_for`` (tokens to leave for the answer) the oldest turns that don't fit go.
    """
    if truncate_for is None:
        return await asyncio.to_thread(_render_and_tokenize, engine, messages, tools)
    tokens, _ = await asyncio.to_thread(_truncated, engine, messages, tools, truncate_for)
    return tokens


async def cache_point(engine: ChatEngine, request: ChatRequest, prompt: list[int]) -> int:
    """How many of ``prompt``'s tokens lie before the caller's cache breakpoint: the prefix is
    rendered as the whole prompt is (tools, template, tool-call prompt) and compared token by
    token, so the count is exactly what the two prompts share."""
    prefix = request.cache_prefix
    if prefix is None:
        return 0
    shaped = dataclasses.replace(
        request,
        messages=prefix.messages,
        tools=prefix.tools,
        tool_choice="auto" if prefix.tools else "none",
        output=None,
    )
    tools = plan_tools(engine, shaped, prefix.messages)
    tokens = await chat_prompt(engine, tools.messages, tools.template_tools)
    return next(
        (i for i, (a, b) in enumerate(zip(tokens, prompt, strict=False)) if a != b),
        min(len(tokens), len(prompt)),
    )


def _tokenize_all(engine: ChatEngine, prompts: Sequence[str | Sequence[int]]) -> list[list[int]]:
    return [engine.tokenize(p) if isinstance(p, str) else list(p) for p in prompts]


async def completion_prompts(engine: ChatEngine, prompts: Sequence[str | Sequence[int]]) -> list[list[int]]:
    return await asyncio.to_thread(_tokenize_all, engine, prompts)


def _first(*values: T | None) -> T:
    return next(v for v in values if v is not None)


def sampling_params(
    options: SamplingOptions,
    max_tokens: int,
    model: SamplingDefaults | None = None,
    family: SamplingOptions | None = None,
) -> SamplingParams:
    """Resolve sampling: what the caller set, else the model's defaults (its Modelfile-style
    ``sampling``), else the family's own defaults (Ollama's differ from OpenAI's), else OpenAI's.
    """
    m = model or SamplingDefaults()
    f = family or SamplingOptions()
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_first(options.temperature, m.temperature, f.temperature, 1.0),
        top_p=_first(options.top_p, m.top_p, f.top_p, 1.0),
        top_k=_first(options.top_k, m.top_k, f.top_k, 0),
        min_p=_first(options.min_p, m.min_p, f.min_p, 0.0),
        seed=options.seed,
        stop=options.stop,
        presence_penalty=options.presence_penalty,
        frequency_penalty=options.frequency_penalty,
        repeat_penalty=_first(options.repeat_penalty, m.repeat_penalty, f.repeat_penalty, 1.0),
        logit_bias=dict(options.logit_bias),
    )


def plan(
    engine: ChatEngine,
    prompts: list[list[int]],
    options: SamplingOptions,
    *,
    chat: bool = False,
    context_limit: int | None = None,
    family_defaults: SamplingOptions | None = None,
    constraint: Constraint | None = None,
    tool_calls: bool = False,
    answered: frozenset[tuple[str, str]] = frozenset(),
    answer: Constraint | None = None,
    cache_key: str | None = None,
) -> LocalJob:
    """Choose the output limit (default: the rest of the context), add template stops, check it all.

    ``context_limit`` narrows the context for this request (Ollama's ``num_ctx``), never widens it.
    """
    longest = max(prompts, key=len)
    ctx = min(engine.context_length, context_limit or engine.context_length)
    max_tokens = options.max_tokens if options.max_tokens is not None else max(1, ctx - len(longest))
    params = sampling_params(options, max_tokens, engine.spec.sampling, family_defaults)
    if constraint is not None or cache_key is not None:
        params = dataclasses.replace(params, constraint=constraint, cache_key=cache_key)
    if chat and engine.chat_stop_sequences():
        stops = tuple(dict.fromkeys((*params.stop, *engine.chat_stop_sequences())))
        params = dataclasses.replace(params, stop=stops)
    if context_limit is not None and len(longest) + max_tokens > ctx:
        raise ContextLengthExceeded(
            f"the prompt ({len(longest)} tokens) plus {{output_limit}} ({max_tokens}) exceeds "
            f"{{context_window}} ({ctx})",
            subject=Subject.CONTEXT_WINDOW,
        )
    for prompt in {tuple(p) for p in prompts}:
        engine.validate(prompt, params)
    answer_params = None if answer is None else dataclasses.replace(params, constraint=answer)
    return LocalJob(engine, prompts, params, options.stop, tool_calls, answered, answer_params)
