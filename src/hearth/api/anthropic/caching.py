"""Anthropic's ``cache_control`` breakpoints to the neutral ``CachePrefix``.

Anthropic orders a prompt as tools, then system, then messages; a breakpoint on a block caches
everything up to and including it. Hearth caches every prompt's KV cells on its own, so a
breakpoint changes what is *reported* and what is *kept*: the tokens up to the last breakpoint
that were not read from the cache are the request's ``cache_creation_input_tokens``, and they
are kept for the breakpoint's ``ttl``. A top-level ``cache_control`` (automatic caching) puts
the breakpoint on the last block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hearth.api.anthropic import protocol as an
from hearth.inference.types import CachePrefix, Message, TextPart, Tool

TTL_S = {"5m": 300.0, "1h": 3600.0}
MessageMapper = Callable[[an.InputMessage, int], list[Message]]


def _control(item: Any) -> dict[str, Any] | None:
    extra = getattr(item, "model_extra", None) or {}
    found = extra.get("cache_control")
    return found if isinstance(found, dict) else None


def cache_prefix(
    body: an.CountTokensRequest | an.MessagesRequest, tools: Sequence[Tool], mapped: MessageMapper
) -> CachePrefix | None:
    """The prefix up to the request's last breakpoint; ``mapped`` turns one Anthropic message
    into neutral ones, as the rest of the request is turned."""
    point: tuple[str, int, int] | None = None
    control: dict[str, Any] | None = None
    for k, spec in enumerate(body.tools or []):
        if (found := _control(spec)) is not None:
            point, control = ("tools", k, 0), found
    if isinstance(body.system, list):
        for j, text in enumerate(body.system):
            if (found := _control(text)) is not None:
                point, control = ("system", j, 0), found
    for i, item in enumerate(body.messages):
        if isinstance(item.content, list):
            for j, content in enumerate(item.content):
                if (found := _control(content)) is not None:
                    point, control = ("messages", i, j), found
    if (found := _control(body)) is not None and body.messages:  # automatic: the last block
        last = body.messages[-1]
        point = (
            "messages",
            len(body.messages) - 1,
            len(last.content) - 1 if isinstance(last.content, list) else 0,
        )
        control = found
    if point is None or control is None:
        return None
    ttl = TTL_S.get(str(control.get("ttl", "5m")), TTL_S["5m"])
    where, index, block = point
    if where == "tools":
        return CachePrefix((), tuple(tools[: index + 1]), ttl)
    system = _system(body.system, index if where == "system" else None)
    if where == "system":
        return CachePrefix(system, tuple(tools), ttl)
    messages: list[Message] = list(system)
    for i, item in enumerate(body.messages[: index + 1]):
        if i == index and isinstance(item.content, list):
            item = an.InputMessage(role=item.role, content=item.content[: block + 1])
        messages.extend(mapped(item, i))
    return CachePrefix(tuple(messages), tuple(tools), ttl)


def _system(system: str | list[an.TextBlock] | None, through: int | None) -> tuple[Message, ...]:
    if isinstance(system, str) and system:
        return (Message("system", (TextPart(system),), origin="system"),)
    if isinstance(system, list) and system:
        blocks = system if through is None else system[: through + 1]
        return (Message("system", tuple(TextPart(b.text) for b in blocks), origin="system"),)
    return ()
