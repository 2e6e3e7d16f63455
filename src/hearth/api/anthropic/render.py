"""Neutral results as Anthropic Messages: one JSON body, or the named SSE event sequence.

A stream is ``message_start``, then per content block ``content_block_start``, its deltas and
``content_block_stop`` (a ``ping`` after the first block starts, as Anthropic sends it), then
``message_delta`` with the stop reason and the usage totals, and ``message_stop``. A failure
part-way sends ``event: error`` and ends the stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from hearth.api.anthropic import protocol as an
from hearth.api.anthropic.errors import ANTHROPIC
from hearth.api.ids import new_id
from hearth.api.sse import event_frame, guarded
from hearth.errors import EngineFailure, HearthError
from hearth.gateway.streams import GenerationStream
from hearth.inference.events import (
    ChoiceResult,
    FinishReason,
    GenerationDone,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from hearth.inference.types import ToolCall

_STOP_REASONS: dict[str, an.StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}


def stop_reason(finish: FinishReason | None, stop_sequence: str | None) -> an.StopReason:
    if stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(finish or "stop", "end_turn")


def usage(value: Usage) -> an.Usage:
    written = value.cache_write_tokens
    long_lived = value.cache_write_ttl_s > 300
    return an.Usage(
        input_tokens=value.prompt_tokens - value.cached_tokens - written,
        output_tokens=value.completion_tokens,
        cache_read_input_tokens=value.cached_tokens,
        cache_creation_input_tokens=written,
        cache_creation=an.CacheCreation(
            ephemeral_5m_input_tokens=0 if long_lived else written,
            ephemeral_1h_input_tokens=written if long_lived else 0,
        ),
    )


def _tool_input(call: ToolCall) -> dict[str, Any] | None:
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _tool_uses(result: ChoiceResult) -> list[an.ToolUseContent]:
    """The calls as ``tool_use`` blocks. A call that max_tokens cut short has no JSON object to
    show: it is left out (``stop_reason: max_tokens`` says the turn was cut), never guessed."""
    blocks: list[an.ToolUseContent] = []
    for call in result.tool_calls:
        value = _tool_input(call)
        if value is None and result.finish_reason == "length":
            continue
        if value is None:
            raise EngineFailure(f"the model's arguments for the tool {call.name!r} are not a JSON object")
        blocks.append(an.ToolUseContent(id=call.id, name=call.name, input=value))
    return blocks


def message(stream: GenerationStream, results: list[ChoiceResult]) -> an.Message:
    result = results[0]  # Anthropic has no ``n``: one choice
    content: list[an.ResponseBlock] = []
    calls = _tool_uses(result)
    if result.text or not calls:
        content.append(an.TextContent(text=result.text))
    content.extend(calls)
    return an.Message(
        id=new_id("msg", "_"),
        model=stream.model,
        content=content,
        stop_reason=stop_reason(result.finish_reason, result.stop_sequence),
        stop_sequence=result.stop_sequence,
        usage=usage(stream.usage),
    )


def _event(model: an.StreamEvent) -> bytes:
    return event_frame(model.type, model.model_dump(mode="json"))


def _error_frame(error: HearthError) -> bytes:
    return event_frame("error", ANTHROPIC.error_body(error))


class _Blocks:
    """Which content block is open, and the frames that open and close blocks."""

    def __init__(self) -> None:
        self.count = 0
        self.open: str | None = None  # "text" or "tool_use"

    def start(self, block: an.ResponseBlock) -> list[bytes]:
        frames = self.stop()
        frames.append(_event(an.ContentBlockStart(index=self.count, content_block=block)))
        if self.count == 0:
            frames.append(_event(an.Ping()))
        self.open = block.type
        self.count += 1
        return frames

    def stop(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [_event(an.ContentBlockStop(index=self.count - 1))]

    def delta(self, delta: an.TextDelta | an.InputJsonDelta) -> bytes:
        return _event(an.ContentBlockDelta(index=self.count - 1, delta=delta))


async def message_stream(stream: GenerationStream) -> AsyncIterator[bytes]:
    start = stream.usage
    head = an.Message(
        id=new_id("msg", "_"),
        model=stream.model,
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage=usage(start),  # the cache counts are known once the first piece has come
    )

    async def body() -> AsyncIterator[bytes]:
        yield _event(an.MessageStart(message=head))
        blocks = _Blocks()
        async for _, event in stream:
            if isinstance(event, TextDelta):
                if not event.text:
                    continue
                if blocks.open != "text":
                    for frame in blocks.start(an.TextContent(text="")):
                        yield frame
                yield blocks.delta(an.TextDelta(text=event.text))
            elif isinstance(event, ToolCallDelta):
                if event.id is not None:
                    opened = an.ToolUseContent(id=event.id, name=event.name or "", input={})
                    for frame in blocks.start(opened):
                        yield frame
                if event.arguments:
                    yield blocks.delta(an.InputJsonDelta(partial_json=event.arguments))
            elif isinstance(event, GenerationDone):
                if blocks.count == 0:  # nothing generated: still one (empty) text block
                    for frame in blocks.start(an.TextContent(text="")):
                        yield frame
                for frame in blocks.stop():
                    yield frame
                totals = stream.usage
                yield _event(
                    an.MessageDelta(
                        delta=an.MessageDeltaBody(
                            stop_reason=stop_reason(event.finish_reason, event.stop_sequence),
                            stop_sequence=event.stop_sequence,
                        ),
                        usage=an.MessageDeltaUsage(**usage(totals).model_dump(exclude={"cache_creation"})),
                    )
                )
                yield _event(an.MessageStop())

    async for data in guarded(body(), stream, _error_frame):
        yield data
