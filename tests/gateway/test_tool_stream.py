"""The tool-call scanner: calls out of constrained text, each repeat within a turn dropped."""

from __future__ import annotations

import json

from hearth.engines.constraints import HERMES
from hearth.gateway.tool_stream import ToolCallParser
from hearth.inference.events import ChoiceEvent, GenerationDone, TextDelta, ToolCallDelta


def _call(name: str, arguments: dict[str, object]) -> str:
    body = json.dumps({"name": name, "arguments": arguments}, separators=(", ", ": "))
    return f"<tool_call>\n{body}\n</tool_call>"


def _run(text: str, piece: int = 3, reason: str = "stop") -> list[ChoiceEvent]:
    parser = ToolCallParser(HERMES)
    out: list[ChoiceEvent] = []
    for start in range(0, len(text), piece):  # one token per few characters, as a model streams
        out += parser(TextDelta(text[start : start + piece], 1))
    out += parser(GenerationDone(reason, prompt_tokens=5, completion_tokens=-(-len(text) // piece)))
    return out


def _calls(events: list[ChoiceEvent]) -> list[tuple[str, dict[str, object]]]:
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            if event.name is not None:
                names[event.call_index] = event.name
            arguments[event.call_index] = arguments.get(event.call_index, "") + event.arguments
    assert sorted(names) == list(range(len(names))), "indices run 0, 1, 2 … with no gap"
    return [(names[i], json.loads(arguments[i])) for i in sorted(names)]


def test_identical_calls_in_one_turn_are_made_once_and_their_tokens_still_counted() -> None:
    paris = _call("get_weather", {"city": "Paris"})
    text = "\n".join([paris, _call("get_weather", {"city": "Rome"}), paris, paris])
    events = _run(text)
    assert _calls(events) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    tokens = sum(e.tokens for e in events if isinstance(e, ToolCallDelta | TextDelta))
    assert tokens == -(-len(text) // 3), "a dropped call's tokens are billed with the ones kept"
    assert isinstance(events[-1], GenerationDone) and events[-1].finish_reason == "tool_calls"


def test_same_tool_with_other_arguments_is_kept() -> None:
    text = "\n".join(
        [_call("convert", {"value": 1, "unit": "km"}), _call("convert", {"unit": "km", "value": 2})]
    )
    assert [args for _, args in _calls(_run(text))] == [
        {"value": 1, "unit": "km"},
        {"unit": "km", "value": 2},
    ]


def test_a_later_call_cut_short_by_max_tokens_still_reaches_the_caller() -> None:
    text = _call("get_weather", {"city": "Paris"}) + "\n" + _call("get_weather", {"city": "Rome"})[:-20]
    events = _run(text, reason="length")
    starts = [e for e in events if isinstance(e, ToolCallDelta) and e.name is not None]
    assert [e.call_index for e in starts] == [0, 1]
    assert isinstance(events[-1], GenerationDone) and events[-1].finish_reason == "length"


def test_text_passes_through() -> None:
    events = _run("It is sunny in Paris.")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is sunny in Paris."
