"""A response's output items, built from one choice's generation events as they arrive.

Text opens an assistant message item and grows it; a ``ToolCallDelta`` with an ``id`` opens a
function-call item (closing whatever was open) and later deltas grow its arguments. One item is
open at a time, as OpenAI streams them. ``GenerationDone`` closes the open item, and a
generation that produced nothing still answers with one (empty) message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hearth.errors import HearthError
from hearth.inference.events import ChoiceEvent, GenerationDone, TextDelta, ToolCallDelta
from hearth.inference.responses import (
    ArgumentsAdded,
    ItemAdded,
    ItemDone,
    ItemStatus,
    OutputItem,
    ResponseError,
    ResponseEvent,
    ResponseRecord,
    TextAdded,
)

STOPPED_MESSAGE = "the server stopped while this response was running; create it again"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class OutputBuilder:
    def __init__(self, record: ResponseRecord) -> None:
        self.record = record
        self._open: int | None = None  # index in record.output of the item being generated
        self._calls: dict[int, int] = {}  # the generation's call index -> output index

    def feed(self, event: ChoiceEvent) -> list[ResponseEvent]:
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.text else []
        if isinstance(event, ToolCallDelta):
            return self._call(event)
        return self.close("incomplete" if event.finish_reason == "length" else "completed")

    def close(self, status: ItemStatus) -> list[ResponseEvent]:
        """Close the open item with ``status`` (an empty message if nothing was generated)."""
        events: list[ResponseEvent] = []
        if not self.record.output:
            events += self._open_item(OutputItem("message", new_id("msg")))
        return events + self._close(status)

    def _text(self, text: str) -> list[ResponseEvent]:
        events: list[ResponseEvent] = []
        if self._open is None or self.record.output[self._open].type != "message":
            events += self._close("completed")
            events += self._open_item(OutputItem("message", new_id("msg")))
        index = self._open
        assert index is not None
        self.record.output[index].text += text
        events.append(TextAdded(index, text))
        return events

    def _call(self, delta: ToolCallDelta) -> list[ResponseEvent]:
        events: list[ResponseEvent] = []
        if delta.id is not None or delta.call_index not in self._calls:
            events += self._close("completed")
            item = OutputItem(
                "function_call", new_id("fc"), call_id=delta.id or new_id("call"), name=delta.name or ""
            )
            events += self._open_item(item)
            assert self._open is not None
            self._calls[delta.call_index] = self._open
        index = self._calls[delta.call_index]
        if delta.arguments:
            self.record.output[index].arguments += delta.arguments
            events.append(ArgumentsAdded(index, delta.arguments))
        return events

    def _open_item(self, item: OutputItem) -> list[ResponseEvent]:
        self.record.output.append(item)
        self._open = len(self.record.output) - 1
        return [ItemAdded(self._open, item.snapshot())]

    def _close(self, status: ItemStatus) -> list[ResponseEvent]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        item = self.record.output[index]
        item.status = status
        return [ItemDone(index, item.snapshot())]


def conclude(record: ResponseRecord, done: GenerationDone) -> None:
    """The response's status from how its generation ended."""
    if done.finish_reason == "length":
        record.status, record.incomplete_reason = "incomplete", "max_output_tokens"
    else:
        record.status = "completed"
    record.completed_at = datetime.now(UTC)


def fail(record: ResponseRecord, error: HearthError) -> None:
    record.status = "failed"
    record.error = ResponseError(error.kind.value, error.reason, error.message)
    record.completed_at = datetime.now(UTC)
    for item in record.output:
        if item.status == "in_progress":
            item.status = "incomplete"
