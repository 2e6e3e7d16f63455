"""Constrained text into tool calls, as it streams: ``TextDelta`` in, ``ToolCallDelta`` out.

The grammar fixes the shape of every call (``<tool_call>\\n{"name": "...", "arguments": {...}}
\\n</tool_call>``, compact JSON, name first), so a small scanner can follow it: it holds text back
until it knows whether the answer is text or calls, emits a call's first delta (id and name) as
soon as its name is complete, then its arguments as they arrive, and ends the choice with
``tool_calls``. Text the grammar allowed (``auto``) passes through untouched.

A call that repeats an earlier one of the same turn (same name, same arguments) is dropped: small
models loop on a call, and running it twice gives the caller nothing. So that it can be, every
call after the first is held until it is complete; the first streams as it is written.

Under ``auto``, a call whose result the conversation already holds is dropped too, and every
call is held (the first included) so that it can be. A turn left with nothing but such repeats
ends in ``AnswerInstead``: the stream then has the model answer in text (streams.py), with the
repeated calls as the fallback where it cannot.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass

from hearth.engines.constraints import ToolCallFormat
from hearth.gateway.tools import call_key
from hearth.inference.events import ChoiceEvent, FinishReason, GenerationDone, TextDelta, ToolCallDelta

_NAME = '{"name": '


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class AnswerInstead:
    """The turn only repeated calls already answered: answer in text, or send ``fallback``."""

    fallback: list[ChoiceEvent]


class ToolCallParser:
    """One choice's filter; call it with each event, it returns the events to pass on."""

    def __init__(self, fmt: ToolCallFormat, answered: frozenset[tuple[str, str]] = frozenset()) -> None:
        self._fmt = fmt
        self._answered = answered
        self._repeats: list[list[ChoiceEvent]] = []  # calls dropped as answered already
        self._args_key = f', "{fmt.arguments_key}": '
        self._mode: str | None = None  # None (undecided), "text" or "calls"
        self._buffer = ""  # calls text not yet consumed
        self._tokens = 0  # tokens behind text not yet passed on
        self._calls = 0  # calls read from the text
        self._sent = 0  # calls passed on (repeats dropped); the index of the next one
        self._seen: set[tuple[str, str]] = set()
        self._name = ""
        self._arguments = ""
        self._held: list[ChoiceEvent] | None = None  # a later call's deltas, until it is complete
        self._state = "open"  # open -> name -> args -> close (-> open for the next call)
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def __call__(self, event: ChoiceEvent) -> list[ChoiceEvent | AnswerInstead]:
        if isinstance(event, TextDelta):
            return self._text(event)
        if isinstance(event, GenerationDone):
            return self._done(event)
        return [event]

    def _text(self, delta: TextDelta) -> list[ChoiceEvent | AnswerInstead]:
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

    def _scan(self) -> list[ChoiceEvent | AnswerInstead]:
        out: list[ChoiceEvent | AnswerInstead] = []
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
                    self._name = str(json.loads(self._buffer[len(_NAME) : end]))
                    self._arguments = ""
                    self._buffer = self._buffer[end + len(self._args_key) :]
                    self._held = [] if self._sent or self._answered else None
                    first = ToolCallDelta(self._sent, "", new_call_id(), self._name, self._take_tokens())
                    (out if self._held is None else self._held).append(first)
                    self._state, self._depth, progressed = "args", 0, True
            elif self._state == "args":
                consumed, complete = self._json_end(self._buffer)
                if consumed:
                    piece = self._buffer[:consumed]
                    self._arguments += piece
                    delta = ToolCallDelta(self._sent, piece, tokens=self._take_tokens())
                    (out if self._held is None else self._held).append(delta)
                    self._buffer = self._buffer[consumed:]
                if complete:
                    self._state, progressed = "close", True
            elif self._state == "close":
                tail = "}" + self._fmt.close
                if len(self._buffer) >= len(tail):
                    self._buffer = self._buffer[len(tail) :]
                    self._calls += 1
                    out.extend(self._complete())
                    self._state, progressed = "open", True
        return out

    def _complete(self) -> list[ChoiceEvent]:
        """The call just read, unless it repeats one this turn already made."""
        held, self._held = self._held or [], None
        key = call_key(self._name, self._arguments)
        if key in self._seen:
            self._tokens += sum(e.tokens for e in held if isinstance(e, ToolCallDelta))
            return []
        self._seen.add(key)
        if key in self._answered:
            self._repeats.append(held)
            return []
        self._sent += 1
        return held

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

    def _done(self, done: GenerationDone) -> list[ChoiceEvent | AnswerInstead]:
        out: list[ChoiceEvent | AnswerInstead] = []
        if self._mode is None and self._buffer:  # ended while it could still have been a call
            out.append(self._pass(self._buffer))
            self._buffer = ""
        elif self._mode == "calls":
            if self._repeats and not self._sent:
                if done.finish_reason == "stop" and not self._held:
                    return [AnswerInstead([*self._renumbered(), self._ended(done, "tool_calls")])]
                out.extend(self._renumbered())
            if self._held:  # cut short (max_tokens): the caller sees what there was, as for the first
                out.extend(self._held)
                self._held, self._sent = None, self._sent + 1
            if self._tokens and self._sent:
                out.append(ToolCallDelta(self._sent - 1, "", tokens=self._take_tokens()))
        reason = done.finish_reason
        if self._sent and reason == "stop":
            reason = "tool_calls"
        out.append(self._ended(done, reason))
        return out

    def _renumbered(self) -> list[ChoiceEvent]:
        """The repeated calls, numbered as the only calls of the turn."""
        events: list[ChoiceEvent] = []
        for held in self._repeats:
            events.extend(
                dataclasses.replace(e, call_index=self._sent) if isinstance(e, ToolCallDelta) else e
                for e in held
            )
            self._sent += 1
        self._repeats = []
        return events

    @staticmethod
    def _ended(done: GenerationDone, reason: FinishReason) -> GenerationDone:
        return GenerationDone(
            reason,
            done.prompt_tokens,
            done.completion_tokens,
            done.cached_tokens,
            done.stop_sequence,
        )
