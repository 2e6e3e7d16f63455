"""What a chat's tools become before decoding: the grammar for each tool choice, and the
conversation the model reads (the Responses API's separate call items grouped into one turn)."""

from __future__ import annotations

from pathlib import Path

import llguidance

from hearth.config import ModelKind, ModelSpec
from hearth.engines.context import EngineContext
from hearth.engines.fake import FakeChatEngine
from hearth.engines.grammar_walk import byte_tokenizer
from hearth.gateway.tools import ANSWER_NOW, plan_tools
from hearth.inference.responses import grouped_calls
from hearth.inference.types import ChatRequest, Message, NamedTool, Tool, ToolCall

WEATHER = Tool(
    "get_weather", "Weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)
CALL = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
AFTER_A_CALL = (
    Message.of("user", "Weather in Paris?"),
    Message("assistant", tool_calls=(CALL,)),
    Message("tool", Message.of("tool", "sunny").parts, tool_call_id="call_1"),
)


def _engine() -> FakeChatEngine:
    spec = ModelSpec(id="f", kind=ModelKind.CHAT, backend="fake", source="-")
    return FakeChatEngine(spec, EngineContext(Path("-")))


def _accepts(grammar: str, text: str) -> bool:
    matcher = llguidance.LLMatcher(byte_tokenizer(), grammar, log_level=0)
    return bool(matcher.consume_tokens(list(text.encode()))) and bool(matcher.is_accepting())


def test_tool_choice_none_after_calls_keeps_call_markup_out_of_the_answer() -> None:
    request = ChatRequest("f", AFTER_A_CALL, tools=(WEATHER,), tool_choice="none")
    plan = plan_tools(_engine(), request, AFTER_A_CALL)
    assert plan.constraint is not None and not plan.calls and plan.template_tools == ()
    assert _accepts(plan.constraint.grammar, "It is sunny in Paris.")
    assert not _accepts(plan.constraint.grammar, '<tool_call>\n{"name": "get_weather"')
    plain = (Message.of("user", "hi"),)
    assert plan_tools(_engine(), ChatRequest("f", plain), plain).constraint is None, "no tools: free text"


def test_a_named_choice_allows_exactly_one_call_even_with_parallel_calls_on() -> None:
    request = ChatRequest(
        "f",
        AFTER_A_CALL[:1],
        tools=(WEATHER,),
        tool_choice=NamedTool("get_weather"),
        parallel_tool_calls=True,
    )
    plan = plan_tools(_engine(), request, request.messages)
    assert plan.constraint is not None
    one = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert _accepts(plan.constraint.grammar, one)
    assert not _accepts(plan.constraint.grammar, one + "\n" + one.replace("Paris", "Rome"))


def test_consecutive_calls_become_one_assistant_turn() -> None:
    second = ToolCall("call_2", "get_weather", '{"city": "Rome"}')
    messages = [
        Message.of("user", "Paris and Rome?"),
        Message.of("assistant", "Checking both."),
        Message("assistant", tool_calls=(CALL,)),
        Message("assistant", tool_calls=(second,)),
        Message("tool", Message.of("tool", "sunny").parts, tool_call_id="call_1"),
    ]
    grouped = grouped_calls(messages)
    assert [m.role for m in grouped] == ["user", "assistant", "tool"]
    assert grouped[1].text == "Checking both." and grouped[1].tool_calls == (CALL, second)


def test_results_name_their_call_and_the_last_ones_ask_for_an_answer() -> None:
    request = ChatRequest("f", AFTER_A_CALL, tools=(WEATHER,))
    plan = plan_tools(_engine(), request, AFTER_A_CALL)
    result = plan.messages[-1]
    assert result.role == "user" and result.text.startswith(
        '[result of get_weather {"city": "Paris"}]\nsunny'
    )
    assert result.text.endswith(ANSWER_NOW)
    later = (*AFTER_A_CALL, Message.of("assistant", "It is sunny."), Message.of("user", "And Rome?"))
    plan = plan_tools(_engine(), ChatRequest("f", later, tools=(WEATHER,)), later)
    assert not any(ANSWER_NOW in m.text for m in plan.messages), "only results that end the conversation"


def test_required_makes_one_call_unless_parallel_calls_are_asked_for() -> None:
    one = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    two = one + "\n" + one.replace("Paris", "Rome")
    for asked, allowed in ((None, False), (False, False), (True, True)):
        request = ChatRequest(
            "f", AFTER_A_CALL[:1], tools=(WEATHER,), tool_choice="required", parallel_tool_calls=asked
        )
        grammar = plan_tools(_engine(), request, request.messages).constraint
        assert grammar is not None and _accepts(grammar.grammar, one)
        assert _accepts(grammar.grammar, two) is allowed, asked
    auto = ChatRequest("f", AFTER_A_CALL[:1], tools=(WEATHER,))
    grammar = plan_tools(_engine(), auto, auto.messages).constraint
    assert grammar is not None and _accepts(grammar.grammar, two), "auto keeps the APIs' default: parallel"
