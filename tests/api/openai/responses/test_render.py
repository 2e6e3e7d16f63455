"""Output items from generation events, rendered as stream events the ``openai`` SDK accumulates.

The gateway refuses tools today, so no engine emits ``ToolCallDelta`` yet: these tests feed a
run with text and tool-call deltas directly, render its stream, and let the SDK's own stream
state (what ``client.responses.stream`` uses) rebuild the response from it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai._types import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from hearth.api.openai.responses import render
from hearth.errors import EngineFailure
from hearth.gateway.response_output import OutputBuilder
from hearth.gateway.response_runs import ResponseRun
from hearth.gateway.responses import conversation
from hearth.inference.events import ChoiceEvent, GenerationDone, TextDelta, ToolCallDelta, Usage
from hearth.inference.responses import (
    ArgumentsAdded,
    InputItem,
    ItemAdded,
    ItemDone,
    ResponseRecord,
    TextAdded,
    Turn,
)
from hearth.inference.types import Message, ToolCall

TOOL_TURN: list[ChoiceEvent] = [
    TextDelta("Let me check."),
    ToolCallDelta(0, id="call_a", name="weather"),
    ToolCallDelta(0, arguments='{"city": '),
    ToolCallDelta(0, arguments='"Oslo"}'),
    ToolCallDelta(1, id="call_b", name="clock", arguments="{}"),
    GenerationDone("tool_calls", 10, 12),
]


class FakeStream:
    """What a ``GenerationStream`` gives a run: ``(choice, event)`` pairs and usage."""

    def __init__(self, events: list[ChoiceEvent], fail: Exception | None = None) -> None:
        self._events, self._fail = events, fail
        self.usage = Usage(10, 12, 4)
        self.closed = False

    async def _iterate(self) -> AsyncIterator[tuple[int, ChoiceEvent]]:
        for event in self._events:
            yield 0, event
        if self._fail is not None:
            raise self._fail

    def __aiter__(self) -> AsyncIterator[tuple[int, ChoiceEvent]]:
        return self._iterate()

    async def aclose(self) -> None:
        self.closed = True


def record() -> ResponseRecord:
    return ResponseRecord(
        id="resp_1", key_id=None, model="m", status="in_progress", created_at=datetime.now(UTC), params={}
    )


def run_of(stream: FakeStream, saved: list[ResponseRecord]) -> ResponseRun:
    async def save(rec: ResponseRecord, _items: Any) -> None:
        saved.append(rec)

    return ResponseRun(record(), [], stream, save, lambda work: None)  # type: ignore[arg-type]


async def rendered(run: ResponseRun) -> list[Any]:
    body = b"".join([chunk async for chunk in render.stream(run)])
    return [
        construct_type(type_=ResponseStreamEvent, value=sse.json())
        for sse in SSEDecoder().iter_bytes(iter([body]))
    ]


def test_builder_opens_one_item_at_a_time() -> None:
    rec = record()
    builder = OutputBuilder(rec)
    events = [e for event in TOOL_TURN for e in builder.feed(event)]
    assert [type(e) for e in events] == [
        ItemAdded,
        TextAdded,
        ItemDone,
        ItemAdded,
        ArgumentsAdded,
        ArgumentsAdded,
        ItemDone,
        ItemAdded,
        ArgumentsAdded,
        ItemDone,
    ]
    message, weather, clock = rec.output
    assert (message.type, message.text, message.status) == ("message", "Let me check.", "completed")
    assert (weather.call_id, weather.name, weather.arguments) == ("call_a", "weather", '{"city": "Oslo"}')
    assert (clock.call_id, clock.name, clock.arguments, clock.status) == (
        "call_b",
        "clock",
        "{}",
        "completed",
    )
    assert weather.id.startswith("fc_") and message.id.startswith("msg_")


def test_nothing_generated_is_still_one_message() -> None:
    rec = record()
    events = OutputBuilder(rec).feed(GenerationDone("stop", 3, 0))
    assert [type(e) for e in events] == [ItemAdded, ItemDone]
    assert rec.output[0].type == "message" and rec.output[0].text == ""


async def test_tool_call_events_parse_in_the_sdk_stream_state() -> None:
    saved: list[ResponseRecord] = []
    events = await rendered(run_of(FakeStream(TOOL_TURN), saved))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    tools: Any = [
        {"type": "function", "name": n, "parameters": {"type": "object"}} for n in ("weather", "clock")
    ]
    state = ResponseStreamState(input_tools=tools, text_format=omit)
    snapshots = [e for event in events for e in state.handle_event(event)]
    deltas = [e for e in snapshots if e.type == "response.function_call_arguments.delta"]
    assert deltas[1].snapshot == '{"city": "Oslo"}'  # the SDK accumulated our argument deltas
    final = snapshots[-1].response
    assert final.output_text == "Let me check."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_a", "weather", '{"city": "Oslo"}'),
        ("call_b", "clock", "{}"),
    ]
    assert json.loads(calls[0].arguments) == {"city": "Oslo"}
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 4
    assert saved and saved[0].status == "completed"


async def test_a_failure_mid_stream_is_an_error_event_then_failed() -> None:
    saved: list[ResponseRecord] = []
    stream = FakeStream([TextDelta("half")], fail=EngineFailure("boom"))
    events = await rendered(run_of(stream, saved))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    error, failed = events[-2:]
    assert isinstance(error, openai.types.responses.ResponseErrorEvent) and error.message == "boom"
    assert failed.response.status == "failed" and failed.response.error.code == "server_error"
    assert failed.response.output_text == "half" and stream.closed
    assert saved[0].status == "failed" and saved[0].output[0].status == "incomplete"


async def test_max_output_tokens_ends_incomplete() -> None:
    saved: list[ResponseRecord] = []
    events = await rendered(run_of(FakeStream([TextDelta("a b"), GenerationDone("length", 3, 2)]), saved))
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output[0].status == "incomplete"


@pytest.mark.parametrize("parallel", [True, False])
def test_stored_function_calls_join_the_assistant_turn(parallel: bool) -> None:
    builder_record = record()
    builder = OutputBuilder(builder_record)
    for event in TOOL_TURN if parallel else TOOL_TURN[:4] + TOOL_TURN[-1:]:
        builder.feed(event)
    turns = [Turn((Message.of("user", "weather and time?"),), tuple(builder_record.output))]
    messages = conversation(turns)
    assert [m.role for m in messages] == ["user", "assistant"]
    expected = [ToolCall("call_a", "weather", '{"city": "Oslo"}')]
    if parallel:
        expected.append(ToolCall("call_b", "clock", "{}"))
    assert messages[1].text == "Let me check." and list(messages[1].tool_calls) == expected


def test_function_call_input_items_map_to_tool_turns() -> None:
    from hearth.api.openai.responses import mapper
    from hearth.api.openai.responses import protocol as rs

    body = rs.ResponseCreate.model_validate(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            ],
        }
    )
    new = mapper.new_response(body)
    items: list[InputItem] = list(new.input)
    assert [i.message.role for i in items] == ["user", "assistant", "tool"]
    assert items[1].message.tool_calls == (ToolCall("call_1", "weather", "{}"),)
    assert (items[2].message.tool_call_id, items[2].message.text) == ("call_1", "sunny")
    # As the chain rebuilds it: one assistant turn with its call, then the tool's answer.
    chat = new.chat_request(())
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool"]
