"""A turn that only repeats a call the conversation already has the result of is answered in
text instead (tool_stream.AnswerInstead, streams.GenerationStream), on a scripted job: what the
caller gets, and what is counted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from hearth.engines.constraints import HERMES
from hearth.gateway.call import Call, Identity
from hearth.gateway.streams import GenerationStream
from hearth.gateway.tool_stream import ToolCallParser
from hearth.gateway.tools import call_key
from hearth.inference.events import GenerationDone, TextDelta, UpstreamEvent

PARIS = '{"city": "Paris"}'


def _call(arguments: str) -> str:
    return f'<tool_call>\n{{"name": "get_weather", "arguments": {arguments}}}\n</tool_call>'


async def _say(text: str, cached: int) -> AsyncGenerator[UpstreamEvent, None]:
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    for piece in pieces:
        yield 0, TextDelta(piece, 1)
    yield 0, GenerationDone("stop", 40, len(pieces), cached)


@dataclass
class ScriptedJob:
    first: str  # what the model writes
    again: str | None  # what it writes when asked to answer in text (None: it cannot be asked)
    answered: frozenset[tuple[str, str]] = field(
        default_factory=lambda: frozenset({call_key("get_weather", PARIS)})
    )
    choices: int = 1
    prompt_tokens: int = 40
    worst_case_tokens: int = 100
    caller_stops: tuple[str, ...] = ()
    tool_calls: bool = True
    spent: list[int] = field(default_factory=list)

    def events(self) -> AsyncGenerator[UpstreamEvent, None]:
        return _say(self.first, cached=30)

    def answer_events(self, spent: int) -> AsyncGenerator[UpstreamEvent, None] | None:
        self.spent.append(spent)
        return None if self.again is None else _say(self.again, cached=40)


def _run(job: ScriptedJob) -> tuple[GenerationStream, list[object]]:
    call = Call(Identity("req", "openai", "POST /v1/chat/completions"))
    stream = GenerationStream(call, job, model="m", filters=lambda _i: ToolCallParser(HERMES, job.answered))

    async def go() -> list[object]:
        await stream.prime()
        return [event async for _, event in stream]

    return stream, asyncio.run(go())


def test_a_repeated_answered_call_becomes_a_text_answer() -> None:
    job = ScriptedJob(first=_call(PARIS), again="It is sunny in Paris.")
    stream, events = _run(job)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is sunny in Paris."
    assert not [e for e in events if type(e).__name__ == "ToolCallDelta"]
    done = events[-1]
    assert isinstance(done, GenerationDone) and done.finish_reason == "stop"
    first_tokens = -(-len(_call(PARIS)) // 4)
    assert job.spent == [first_tokens], "the text answer gets what is left of max_tokens"
    # Both passes' tokens are counted; the prompt once, with the first pass's cached share.
    assert stream.usage.completion_tokens == first_tokens + 6
    assert (stream.usage.prompt_tokens, stream.usage.cached_tokens) == (40, 30)


def test_without_room_to_answer_again_the_call_is_sent_as_made() -> None:
    _, events = _run(ScriptedJob(first=_call(PARIS), again=None))
    calls = [e for e in events if type(e).__name__ == "ToolCallDelta"]
    assert calls[0].name == "get_weather" and json.loads("".join(c.arguments for c in calls)) == {
        "city": "Paris"
    }
    assert isinstance(events[-1], GenerationDone) and events[-1].finish_reason == "tool_calls"


def test_a_new_call_and_a_turn_that_also_makes_one_pass_through() -> None:
    rome = '{"city": "Rome"}'
    for first in (_call(rome), _call(PARIS) + "\n" + _call(rome)):
        job = ScriptedJob(first=first, again="unused")
        _, events = _run(job)
        calls = [e for e in events if type(e).__name__ == "ToolCallDelta"]
        assert [c.call_index for c in calls if c.name] == [0] and job.spent == []
        assert json.loads("".join(c.arguments for c in calls)) == {"city": "Rome"}
        assert isinstance(events[-1], GenerationDone) and events[-1].finish_reason == "tool_calls"
