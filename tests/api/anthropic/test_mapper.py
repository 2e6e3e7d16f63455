"""The Anthropic mapper to the neutral model, and the renderer from neutral events (tool calls too)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from hearth.api.anthropic import mapper, render
from hearth.api.anthropic import protocol as an
from hearth.errors import EngineFailure, Unsupported
from hearth.gateway.streams import GenerationStream
from hearth.inference.events import ChoiceEvent, ChoiceResult, GenerationDone, TextDelta, ToolCallDelta, Usage
from hearth.inference.types import ImagePart, Message, NamedTool, OutputFormat, TextPart, Tool, ToolCall
from tests.helpers.anthropic import MESSAGE, named_events


def request(**extra: Any) -> an.MessagesRequest:
    return an.MessagesRequest.model_validate({**MESSAGE, **extra})


def test_system_blocks_sampling_and_metadata() -> None:
    system = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    neutral = mapper.chat_request(
        request(
            system=system,
            temperature=0.2,
            top_p=0.8,
            top_k=5,
            stop_sequences=["\n\n"],
            metadata={"user_id": "u"},
        )
    )
    assert neutral.messages[0] == Message("system", (TextPart("one"), TextPart("two")))
    assert neutral.messages[1] == Message.of("user", "hi")
    sampling = neutral.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.top_k, sampling.stop) == (
        5,
        0.2,
        0.8,
        5,
        ("\n\n",),
    )
    assert (neutral.n, neutral.tools, neutral.tool_choice, neutral.output) == (1, (), "none", None)
    assert mapper.chat_request(request(system="be kind")).messages[0] == Message.of("system", "be kind")


def test_tool_use_and_tool_results_become_neutral_tool_calls_and_messages() -> None:
    png = b"\x89PNG fake"
    conversation = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "no clock"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": base64.b64encode(png).decode(),
                            },
                        },
                    ],
                },
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
    ]
    messages = mapper.chat_request(request(messages=conversation)).messages
    assert messages == (
        Message.of("user", "weather?"),
        Message(
            "assistant",
            (TextPart("checking"),),
            (ToolCall("toolu_1", "weather", '{"city": "Paris"}'), ToolCall("toolu_2", "time", "{}")),
        ),
        Message("tool", (TextPart("sunny"),), tool_call_id="toolu_1"),
        Message(
            "tool",
            (TextPart("no clock"), ImagePart(data=png, media_type="image/png")),
            tool_call_id="toolu_2",
        ),
        Message.of("user", "and tomorrow?"),
    )
    assert json.loads(messages[1].tool_calls[0].arguments) == {"city": "Paris"}


def test_image_sources() -> None:
    content = [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/jpeg",
                "data": base64.b64encode(b"jpg").decode(),
            },
        },
    ]
    (message,) = mapper.chat_request(request(messages=[{"role": "user", "content": content}])).messages
    assert message.parts == (
        ImagePart(url="https://example.com/a.png"),
        ImagePart(data=b"jpg", media_type="image/jpeg"),
    )


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        (None, "auto", None),
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "tool", "name": "weather"}, NamedTool("weather"), None),
        ({"type": "none"}, "none", None),
    ],
)
def test_tool_choice(choice: dict[str, Any] | None, expected: object, parallel: bool | None) -> None:
    tools = [
        {"name": "weather", "description": "today's", "input_schema": {"type": "object", "properties": {}}}
    ]
    neutral = mapper.chat_request(request(tools=tools, **({"tool_choice": choice} if choice else {})))
    assert neutral.tools == (Tool("weather", "today's", {"type": "object", "properties": {}}),)
    assert (neutral.tool_choice, neutral.parallel_tool_calls) == (expected, parallel)


def test_refusals_name_the_field() -> None:
    with pytest.raises(Unsupported) as server_tool:
        mapper.chat_request(request(tools=[{"type": "bash_20250124", "name": "bash"}]))
    assert server_tool.value.param == "tools[0]"
    with pytest.raises(Unsupported) as document:
        mapper.chat_request(
            request(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}])
        )
    assert document.value.param == "messages[0].content[0]"
    with pytest.raises(Unsupported) as thinking:
        mapper.count_request(
            an.CountTokensRequest.model_validate({**MESSAGE, "thinking": {"type": "adaptive"}})
        )
    assert thinking.value.param == "thinking"


def test_output_config_maps_to_a_json_schema_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    neutral = mapper.chat_request(
        request(output_config={"format": {"type": "json_schema", "schema": schema}})
    )
    assert neutral.output == OutputFormat("json_schema", schema)


def test_stop_reasons() -> None:
    assert render.stop_reason("stop", None) == "end_turn"
    assert render.stop_reason("stop", "###") == "stop_sequence"
    assert render.stop_reason("length", None) == "max_tokens"
    assert render.stop_reason("tool_calls", None) == "tool_use"


class _Stream:
    """What the renderer reads of a ``GenerationStream``: events, the model asked for, usage."""

    def __init__(self, events: list[ChoiceEvent], usage: Usage) -> None:
        self.model = "fake-chat"
        self.usage = usage
        self._events = iter(events)
        self.closed = False

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> tuple[int, ChoiceEvent]:
        try:
            return 0, next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed = True


def fake_stream(events: list[ChoiceEvent], usage: Usage) -> GenerationStream:
    return cast(GenerationStream, _Stream(events, usage))


def test_tool_calls_render_as_tool_use_blocks() -> None:
    result = ChoiceResult("let me check", [ToolCall("toolu_9", "weather", '{"city": "Oslo"}')], "tool_calls")
    message = render.message(fake_stream([], Usage(20, 7, 12)), [result])
    assert message.model_dump()["content"] == [
        {"type": "text", "text": "let me check"},
        {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}},
    ]
    assert message.stop_reason == "tool_use"
    # Anthropic's input_tokens leaves out the prompt-cache reads; the two add up to the prompt.
    assert message.usage.model_dump() == {
        "input_tokens": 8,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 12,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    }
    only_call = ChoiceResult("", [ToolCall("toolu_9", "weather", "{}")], "tool_calls")
    assert [b.type for b in render.message(fake_stream([], Usage()), [only_call]).content] == ["tool_use"]
    with pytest.raises(EngineFailure):
        render.message(
            fake_stream([], Usage()), [ChoiceResult("", [ToolCall("t", "w", "[1]")], "tool_calls")]
        )


async def _read(body: AsyncIterator[bytes]) -> str:
    return b"".join([chunk async for chunk in body]).decode()


def test_streamed_tool_calls_are_tool_use_blocks_with_input_json_deltas() -> None:
    events: list[ChoiceEvent] = [
        TextDelta("checking"),
        ToolCallDelta(0, id="toolu_1", name="weather"),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(0, arguments='"Oslo"}'),
        GenerationDone("tool_calls", 10, 6),
    ]
    stream = fake_stream(events, Usage(10, 6))
    frames = named_events(asyncio.run(_read(render.message_stream(stream))))
    assert [(name, data.get("index")) for name, data in frames] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("ping", None),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert frames[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "weather",
        "input": {},
    }
    assert [f[1]["delta"] for f in frames[6:8]] == [
        {"type": "input_json_delta", "partial_json": '{"city": '},
        {"type": "input_json_delta", "partial_json": '"Oslo"}'},
    ]
    assert frames[9][1]["delta"]["stop_reason"] == "tool_use"
    assert cast(_Stream, stream).closed


def test_an_empty_reply_still_streams_one_text_block() -> None:
    stream = fake_stream([TextDelta("", 1), GenerationDone("stop", 3, 1)], Usage(3, 1))
    frames = named_events(asyncio.run(_read(render.message_stream(stream))))
    assert [name for name, _ in frames] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert frames[4][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


EPHEMERAL = {"type": "ephemeral"}
TOOL = {"name": "lookup", "description": "d", "input_schema": {"type": "object"}}


def test_cache_control_breakpoints_become_the_cached_prefix() -> None:
    assert mapper.chat_request(request()).cache_prefix is None
    on_tools = mapper.chat_request(
        request(tools=[TOOL, {**TOOL, "name": "two", "cache_control": EPHEMERAL}, TOOL])
    )
    assert on_tools.cache_prefix is not None
    assert on_tools.cache_prefix.messages == () and [t.name for t in on_tools.cache_prefix.tools] == [
        "lookup",
        "two",
    ]

    system = [
        {"type": "text", "text": "one", "cache_control": {**EPHEMERAL, "ttl": "1h"}},
        {"type": "text", "text": "two"},
    ]
    on_system = mapper.chat_request(request(system=system)).cache_prefix
    assert on_system is not None and on_system.ttl_s == 3600
    assert on_system.messages == (Message("system", (TextPart("one"),)),)

    turns = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "lookup", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "42", "cache_control": EPHEMERAL},
            {"type": "text", "text": "and now?"},
        ]},
    ]  # fmt: skip
    on_message = mapper.chat_request(request(messages=turns, tools=[TOOL])).cache_prefix
    assert on_message is not None and on_message.ttl_s == 300
    assert [m.role for m in on_message.messages] == ["user", "assistant", "tool"], "up to the tool result"
    automatic = mapper.chat_request(
        request(messages=turns, tools=[TOOL], cache_control=EPHEMERAL)
    ).cache_prefix
    assert automatic is not None and [m.role for m in automatic.messages] == [
        "user",
        "assistant",
        "tool",
        "user",
    ]


def test_cache_writes_are_reported_apart_from_reads_and_fresh_input() -> None:
    value = render.usage(
        Usage(prompt_tokens=500, completion_tokens=4, cached_tokens=100, cache_write_tokens=350)
    )
    assert (value.input_tokens, value.cache_read_input_tokens, value.cache_creation_input_tokens) == (
        50,
        100,
        350,
    )
    assert value.cache_creation.ephemeral_5m_input_tokens == 350
    long_lived = render.usage(Usage(500, 4, 0, 400, cache_write_ttl_s=3600))
    assert long_lived.cache_creation.ephemeral_1h_input_tokens == 400
