"""Constrained text into tool calls, as it streams: ``TextDelta`` in, ``ToolCallDelta`` out.

The grammar fixes the shape of every call (``<tool_call>\\n{"name": "...", "arguments": {...}}
\\n</tool_call>``, compact JSON, name first), so a small scanner can follow it: it holds text back
until it knows whether the answer is text or calls, emits a call's first delta (id and name) as
soon as its name is complete, then its arguments as they arrive, and ends the choice with
``tool_calls``. Text the grammar allowed (``auto``) passes through untouched.
"""

from __future__ import annotations

import json
import uuid

from hearth.engines.constraints import ToolCallFormat
from hearth.inference.events import ChoiceEvent, GenerationDone, TextDelta, ToolCallDelta

_NAME = '{"name": '


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCallParser:
    """One choice's filter; call it with each event, it returns the events to pass on."""

    def __init__(self, fmt: ToolCallFormat) -> None:
        self._fmt = fmt
        self._args_key = f', "{fmt.arguments_key}": '
        self._mode: str | None = None  # None (undecided), "text" or "calls"
        self._buffer = ""  # calls text not yet consumed
        self._tokens = 0  # tokens behind text not yet passed on
        self._calls = 0
        self._state = "open"  # open -> name -> args -> close (-> open for the next call)
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def __call__(self, event: ChoiceEvent) -> list[ChoiceEvent]:
        if isinstance(event, TextDelta):
            return self._text(event)
        if isinstance(event, GenerationDone):
            return self._done(event)
        return [event]

    def _text(self, delta: TextDelta) -> list[ChoiceEvent]:
        self._tokens += delta.tokens
        if self._mode == "text":
            return [self._pass(delta.text)]
        self._buffer += delta.text
        if self._mode is None:
            opening = self._fmt.open
            if self._buffer.startswith(opening):
                self._mode = "calls"
            elif opening.startswith(self._buffer):
                return []  # could still become a call: wait for more
            else:
                self._mode, text, self._buffer = "text", self._buffer, ""
                return [self._pass(text)]
        return self._scan()

    def _pass(self, text: str) -> TextDelta:
        tokens, self._tokens = self._tokens, 0
        return TextDelta(text, tokens)

    def _scan(self) -> list[ChoiceEvent]:
        out: list[ChoiceEvent] = []
        progressed = True
        while progressed:
            progressed = False
            if self._state == "open":
                lead = self._fmt.open if self._calls == 0 else self._fmt.separator + self._fmt.open
                if len(self._buffer) >= len(lead) and self._buffer.startswith(lead):
                    self._buffer = self._buffer[len(lead) :]
                    self._state, progressed = "name", True
            elif self._state == "name":
                end = self._buffer.find(self._args_key)
                if self._buffer.startswith(_NAME) and end > 0:
                    name = json.loads(self._buffer[len(_NAME) : end])
                    self._buffer = self._buffer[end + len(self._args_key) :]
                    out.append(ToolCallDelta(self._calls, "", new_call_id(), str(name), self._take_tokens()))
                    self._state, self._depth, progressed = "args", 0, True
            elif self._state == "args":
                consumed, complete = self._json_end(self._buffer)
                if consumed:
                    out.append(
                        ToolCallDelta(self._calls, self._buffer[:consumed], tokens=self._take_tokens())
                    )
                    self._buffer = self._buffer[consumed:]
                if complete:
                    self._state, progressed = "close", True
            elif self._state == "close":
                tail = "}" + self._fmt.close
                if len(self._buffer) >= len(tail):
                    self._buffer = self._buffer[len(tail) :]
                    self._calls += 1
                    self._state, progressed = "open", True
        return out

    def _take_tokens(self) -> int:
        tokens, self._tokens = self._tokens, 0
        return tokens

    def _json_end(self, text: str) -> tuple[int, bool]:
        """How much of ``text`` belongs to the arguments object, and whether it is complete."""
        for index, char in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return index + 1, True
        return len(text), False

    def _done(self, done: GenerationDone) -> list[ChoiceEvent]:
        out: list[ChoiceEvent] = []
        if self._mode is None and self._buffer:  # ended while it could still have been a call
            out.append(self._pass(self._buffer))
            self._buffer = ""
        elif self._mode == "calls" and self._tokens and self._calls:
            out.append(ToolCallDelta(self._calls - 1, "", tokens=self._take_tokens()))
        reason = done.finish_reason
        if self._calls and reason == "stop":
            reason = "tool_calls"
        out.append(
            GenerationDone(
                reason, done.prompt_tokens, done.completion_tokens, done.cached_tokens, done.stop_sequence
            )
        )
        return out
