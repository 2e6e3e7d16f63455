"""Stored responses as OpenAI's response object, and a run as its typed SSE events.

A stream is ``response.created``, ``response.in_progress``, then for each output item
``response.output_item.added``; for a message ``response.content_part.added``, the
``response.output_text.delta`` events, ``response.output_text.done`` and
``response.content_part.done``; for a function call the
``response.function_call_arguments.delta`` events and ``.done``; then
``response.output_item.done``. It ends with ``response.completed`` or ``response.incomplete``,
or on a failure an ``error`` event and ``response.failed``. Every event names itself in an
``event:`` line and in its ``type``, and carries a ``sequence_number`` counting from 0.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

from hearth.api.openai.errors import code
from hearth.api.openai.responses import protocol as rs
from hearth.api.openai.responses.errors import RESPONSES, WORDS
from hearth.api.sse import event_frame
from hearth.errors import ErrorKind, as_hearth_error, in_words
from hearth.gateway.response_runs import ResponseRun
from hearth.inference.events import Usage
from hearth.inference.responses import (
    ArgumentsAdded,
    ItemAdded,
    ItemDone,
    ItemPage,
    OutputItem,
    ResponseError,
    ResponseEvent,
    ResponseRecord,
    TextAdded,
)

_ERROR_CODES = {
    ErrorKind.RATE_LIMITED.value: "rate_limit_exceeded",
    ErrorKind.QUOTA_EXCEEDED.value: "rate_limit_exceeded",
    ErrorKind.INVALID_REQUEST.value: "invalid_prompt",
    ErrorKind.CONTEXT_LENGTH.value: "invalid_prompt",
    ErrorKind.UNSUPPORTED.value: "invalid_prompt",
    ErrorKind.INVALID_IMAGE.value: "invalid_image",
}


def _timestamp(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def usage(value: Usage | None) -> rs.Usage | None:
    if value is None:
        return None
    return rs.Usage(
        input_tokens=value.prompt_tokens,
        input_tokens_details=rs.InputTokensDetails(cached_tokens=value.cached_tokens),
        output_tokens=value.completion_tokens,
        total_tokens=value.total_tokens,
    )


def output_item(item: OutputItem) -> rs.OutputItem:
    if item.type == "message":
        content = [] if item.status == "in_progress" and not item.text else [rs.OutputText(text=item.text)]
        return rs.OutputMessage(id=item.id, status=item.status, content=content)
    return rs.FunctionCall(
        id=item.id, call_id=item.call_id, name=item.name, arguments=item.arguments, status=item.status
    )


def _error(error: ResponseError | None) -> rs.ResponseError | None:
    if error is None:
        return None
    return rs.ResponseError(
        code=_ERROR_CODES.get(error.kind, "server_error"), message=in_words(error.message, WORDS)
    )


def response(record: ResponseRecord) -> rs.Response:
    p = record.params
    reason = record.incomplete_reason
    return rs.Response(
        id=record.id,
        created_at=_timestamp(record.created_at) or 0,
        completed_at=_timestamp(record.completed_at) if record.status == "completed" else None,
        status=record.status,
        background=record.background,
        error=_error(record.error),
        incomplete_details=None if reason is None else rs.IncompleteDetails(reason=reason),
        instructions=record.instructions,
        max_output_tokens=p.get("max_output_tokens"),
        model=record.model,
        output=[output_item(i) for i in record.output],
        parallel_tool_calls=p.get("parallel_tool_calls", True),
        previous_response_id=record.previous_response_id,
        store=record.store,
        temperature=p.get("temperature"),
        text=p.get("text", {"format": {"type": "text"}}),
        tool_choice=p.get("tool_choice", "auto"),
        tools=p.get("tools", []),
        top_p=p.get("top_p"),
        truncation=p.get("truncation", "disabled"),
        usage=usage(record.usage),
        user=p.get("user"),
        prompt_cache_key=p.get("prompt_cache_key"),
        metadata=p.get("metadata", {}),
    )


def input_items(page: ItemPage) -> rs.InputItemList:
    ids = [str(item.get("id")) for item in page.items]
    return rs.InputItemList(
        data=[dict(item) for item in page.items],
        first_id=ids[0] if ids else None,
        last_id=ids[-1] if ids else None,
        has_more=page.has_more,
    )


# -- streaming ----------------------------------------------------------------------------------


class EventWriter:
    """Numbers events and turns item events into OpenAI's stream events."""

    def __init__(self) -> None:
        self._numbers = itertools.count()
        self._ids: dict[int, str] = {}  # output index -> item id

    def frame(self, kind: str, **fields: Any) -> bytes:
        return event_frame(kind, {"type": kind, "sequence_number": next(self._numbers), **fields})

    def lifecycle(self, kind: str, record: ResponseRecord) -> bytes:
        return self.frame(kind, response=response(record).model_dump(mode="json"))

    def item_event(self, event: ResponseEvent) -> list[bytes]:
        if isinstance(event, ItemAdded):
            self._ids[event.index] = event.item.id
            frames = [
                self.frame("response.output_item.added", output_index=event.index, item=_dump(event.item))
            ]
            if event.item.type == "message":
                frames.append(
                    self.frame("response.content_part.added", **self._at(event.index), part=_part(""))
                )
            return frames
        if isinstance(event, TextAdded):
            return [
                self.frame(
                    "response.output_text.delta", **self._at(event.index), delta=event.delta, logprobs=[]
                )
            ]
        if isinstance(event, ArgumentsAdded):
            where = {"item_id": self._ids[event.index], "output_index": event.index}
            return [self.frame("response.function_call_arguments.delta", **where, delta=event.delta)]
        return self._item_done(event)

    def _item_done(self, event: ItemDone) -> list[bytes]:
        item, index = event.item, event.index
        if item.type == "function_call":
            where = {"item_id": item.id, "output_index": index}
            frames = [
                self.frame(
                    "response.function_call_arguments.done", **where, name=item.name, arguments=item.arguments
                )
            ]
        else:
            frames = [
                self.frame("response.output_text.done", **self._at(index), text=item.text, logprobs=[]),
                self.frame("response.content_part.done", **self._at(index), part=_part(item.text)),
            ]
        return [*frames, self.frame("response.output_item.done", output_index=index, item=_dump(item))]

    def _at(self, index: int) -> dict[str, Any]:
        return {"item_id": self._ids[index], "output_index": index, "content_index": 0}


def _part(text: str) -> dict[str, Any]:
    return rs.OutputText(text=text).model_dump(mode="json")


def _dump(item: OutputItem) -> dict[str, Any]:
    return output_item(item).model_dump(mode="json")


_FINAL = {"completed": "response.completed", "incomplete": "response.incomplete"}


async def stream(run: ResponseRun) -> AsyncIterator[bytes]:
    writer = EventWriter()
    record = run.record
    try:
        yield writer.lifecycle("response.created", record)
        yield writer.lifecycle("response.in_progress", record)
        try:
            async for event in run.events():
                for frame in writer.item_event(event):
                    yield frame
        except Exception as exc:  # stored as failed already; the stream still ends cleanly
            error = as_hearth_error(exc)
            said = RESPONSES.say(error)
            yield writer.frame("error", code=code(error), message=said.message, param=said.param)
            yield writer.lifecycle("response.failed", record)
            return
        yield writer.lifecycle(_FINAL.get(record.status, "response.failed"), record)
    finally:
        await run.aclose()
