"""Stored responses (OpenAI's Responses API) in neutral form: what the gateway keeps and streams.

A response is one model turn: the caller's input items, the output items the model produced
(assistant text, and tool calls once the gateway emits them), usage and a status. Responses
chain through ``previous_response_id``; the gateway rebuilds the conversation from the store.

The gateway turns a generation's ``TextDelta`` / ``ToolCallDelta`` / ``GenerationDone`` into the
item events below (one output item opened, grown and closed at a time), and the family renders
each as its own stream event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from hearth.inference.events import Usage
from hearth.inference.types import (
    ChatRequest,
    Message,
    OutputFormat,
    SamplingOptions,
    Tool,
    ToolChoice,
)

ResponseStatus = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]
ItemStatus = Literal["in_progress", "completed", "incomplete"]
ACTIVE: tuple[ResponseStatus, ...] = ("queued", "in_progress")


@dataclass
class OutputItem:
    """One output item: an assistant message, or a function call the model made."""

    type: Literal["message", "function_call"]
    id: str
    status: ItemStatus = "in_progress"
    text: str = ""  # message
    call_id: str = ""  # function_call
    name: str = ""
    arguments: str = ""

    def snapshot(self) -> OutputItem:
        return replace(self)


@dataclass(frozen=True, slots=True)
class ResponseError:
    kind: str  # an ErrorKind value
    code: str | None  # the error's reason, if it had one
    message: str


@dataclass(frozen=True, slots=True)
class InputItem:
    """An input item: the neutral message the model sees, and the item as its family lists it."""

    id: str
    message: Message
    item: Mapping[str, Any]


@dataclass(frozen=True)
class NewResponse:
    """A request for a new response, in neutral form (the family's mapper builds it)."""

    model: str
    input: tuple[InputItem, ...]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None
    output: OutputFormat | None = None
    truncation: Literal["disabled", "auto"] = "disabled"
    cache_key: str | None = None
    # The request's parameters as the family echoes them on the response object (opaque here).
    params: Mapping[str, Any] = field(default_factory=dict)

    def chat_request(self, history: Sequence[Message]) -> ChatRequest:
        system = () if self.instructions is None else (Message.of("system", self.instructions),)
        return ChatRequest(
            model=self.model,
            messages=(*system, *grouped_calls([*history, *(item.message for item in self.input)])),
            sampling=self.sampling,
            stream=self.stream,
            tools=self.tools,
            tool_choice=self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
            output=self.output,
            truncation=self.truncation,
            cache_key=self.cache_key,
        )


def grouped_calls(messages: Sequence[Message]) -> list[Message]:
    """One assistant turn per model turn: the Responses API lists each call as its own item, and a
    model shown parallel calls as consecutive assistant turns copies them, one after another."""
    out: list[Message] = []
    for message in messages:
        last = out[-1] if out else None
        if (
            last is not None
            and last.role == message.role == "assistant"
            and message.tool_calls
            and not message.parts
        ):
            out[-1] = replace(last, tool_calls=(*last.tool_calls, *message.tool_calls))
        else:
            out.append(message)
    return out


@dataclass
class ResponseRecord:
    """A response as stored and rendered."""

    id: str
    key_id: int | None
    model: str
    status: ResponseStatus
    created_at: datetime
    background: bool = False
    store: bool = True
    previous_response_id: str | None = None
    instructions: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    output: list[OutputItem] = field(default_factory=list)
    usage: Usage | None = None
    error: ResponseError | None = None
    incomplete_reason: str | None = None
    completed_at: datetime | None = None

    @property
    def output_text(self) -> str:
        return "".join(item.text for item in self.output if item.type == "message")


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored response of a conversation: what it was given and what it answered."""

    inputs: tuple[Message, ...]
    output: tuple[OutputItem, ...]
    status: ResponseStatus = "completed"


@dataclass(frozen=True, slots=True)
class ItemPage:
    items: list[Mapping[str, Any]]
    has_more: bool


# -- the item events of a running response -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemAdded:
    index: int  # the item's position in ``output``
    item: OutputItem  # as it was when opened (empty)


@dataclass(frozen=True, slots=True)
class TextAdded:
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class ArgumentsAdded:
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class ItemDone:
    index: int
    item: OutputItem  # whole, with its final status


ResponseEvent = ItemAdded | TextAdded | ArgumentsAdded | ItemDone
