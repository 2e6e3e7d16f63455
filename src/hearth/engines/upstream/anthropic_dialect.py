"""The neutral request in Anthropic's Messages dialect, and its event stream back as neutral events.

System turns become ``system``; tool results become ``tool_result`` blocks in a user turn;
consecutive turns of one role are merged, as the Messages API wants them alternating. The
Messages API needs ``max_tokens``: a request that sets none asks for ``DEFAULT_MAX_TOKENS``, or
less where the model's context is known to be smaller. Sampling it lacks (``seed``, penalties,
``min_p``) is not sent.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hearth.errors import Subject, Unsupported, UpstreamFailure
from hearth.inference.events import (
    FinishReason,
    GenerationDone,
    TextDelta,
    ToolCallDelta,
    UpstreamEvent,
    UsageReport,
)
from hearth.inference.types import CachePrefix, ChatRequest, ImagePart, Message, NamedTool, TextPart

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "stop",
}


def _image(part: ImagePart) -> dict[str, Any]:
    if part.data is None:
        return {"type": "image", "source": {"type": "url", "url": part.url or ""}}
    data = base64.b64encode(part.data).decode()
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": part.media_type or "image/png", "data": data},
    }


def _blocks(item: Message) -> list[dict[str, Any]]:
    if item.role == "tool":
        result = {"type": "tool_result", "tool_use_id": item.tool_call_id or "", "content": item.text}
        return [result]
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": p.text} if isinstance(p, TextPart) else _image(p)
        for p in item.parts
        if not isinstance(p, TextPart) or p.text
    ]
    for call in item.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)}
        )
    return blocks


def _arguments(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def conversation(messages: tuple[Message, ...]) -> tuple[str | None, list[dict[str, Any]]]:
    """The system text, and the turns: alternating, tool results inside user turns."""
    system = "\n\n".join(m.text for m in messages if m.role == "system") or None
    turns: list[dict[str, Any]] = []
    for item in messages:
        if item.role == "system":
            continue
        role = "assistant" if item.role == "assistant" else "user"
        blocks = _blocks(item)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_choice(request: ChatRequest) -> dict[str, Any]:
    choice = request.tool_choice
    parallel = {} if request.parallel_tool_calls is not False else {"disable_parallel_tool_use": True}
    if isinstance(choice, NamedTool):
        return {"type": "tool", "name": choice.name, **parallel}
    if choice == "required":
        return {"type": "any", **parallel}
    if choice == "none":
        return {"type": "none"}
    return {"type": "auto", **parallel}


def messages_body(request: ChatRequest, model: str, context_length: int | None) -> dict[str, Any]:
    if request.n != 1:
        raise Unsupported(
            "this model's server (Anthropic's API) gives one answer per request", subject=Subject.CHOICES
        )
    system, turns = conversation(request.messages)
    options = request.sampling
    limit = options.max_tokens or min(DEFAULT_MAX_TOKENS, context_length or DEFAULT_MAX_TOKENS)
    body: dict[str, Any] = {"model": model, "messages": turns, "max_tokens": limit, "stream": request.stream}
    if system is not None:
        body["system"] = system
    optional = {"temperature": options.temperature, "top_p": options.top_p, "top_k": options.top_k}
    body.update({k: v for k, v in optional.items() if v is not None})
    if options.stop:
        body["stop_sequences"] = list(options.stop)
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
        body["tool_choice"] = _tool_choice(request)
    if request.output is not None:
        schema = dict(request.output.schema or {"type": "object"})
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if request.cache_prefix is not None:
        _mark_cache_breakpoint(body, request.cache_prefix)
    passthrough = request.passthrough
    if passthrough is not None and passthrough.dialect == "anthropic":
        body = {**passthrough.fields, **body}  # the caller's unmodeled fields; Hearth's win
    return body


def count_body(request: ChatRequest, model: str) -> dict[str, Any]:
    body = messages_body(request, model, None)
    for field in ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences"):
        body.pop(field, None)
    return body


def whole_as_events(message: Any) -> list[Any]:
    """An unstreamed Message as the stream events that say the same, so one reader serves both."""
    if not isinstance(message, dict) or message.get("type") == "error":
        return [message]
    usage = message.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    events: list[Any] = [{"type": "message_start", "message": {"usage": usage}}]
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_use":
            start = {"type": "tool_use", "id": block.get("id"), "name": block.get("name")}
            arguments = json.dumps(block.get("input") or {})
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": arguments}})  # fmt: skip
        elif kind == "text":
            start = {"type": "text", "text": block.get("text") or ""}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
    stop = {
        "stop_reason": message.get("stop_reason") or "end_turn",
        "stop_sequence": message.get("stop_sequence"),
    }
    events.append(
        {"type": "message_delta", "delta": stop, "usage": {"output_tokens": usage.get("output_tokens")}}
    )
    return events


class StreamReader:
    """The Messages API's events as neutral ones: text, tool calls, the stop and the usage."""

    def __init__(self, whole: bool = False) -> None:
        del whole  # a Message always carries its usage, streamed or not
        self._blocks: dict[int, int] = {}  # content block index -> tool-call index
        self._input_tokens = self._cached = self._written = self._output_tokens = 0
        self._ended = False

    def read(self, event: Any) -> list[UpstreamEvent]:
        if not isinstance(event, dict):
            raise UpstreamFailure("the upstream sent a stream event that is not an object")
        kind = event.get("type")
        if kind == "error":
            error = event.get("error") or {}
            raise UpstreamFailure(f"the upstream failed mid-stream: {error.get('message', error)}")
        if kind == "message_start":
            self._usage((event.get("message") or {}).get("usage") or {})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                call = self._blocks[int(event.get("index", 0))] = len(self._blocks)
                return [(0, ToolCallDelta(call, "", block.get("id"), block.get("name")))]
            if block.get("type") == "text" and block.get("text"):
                return [(0, TextDelta(block["text"], 1))]
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [(0, TextDelta(delta["text"], 1))]
            if delta.get("type") == "input_json_delta":
                index = self._blocks.get(int(event.get("index", 0)))
                if index is not None and delta.get("partial_json"):
                    return [(0, ToolCallDelta(index, delta["partial_json"]))]
        elif kind == "message_delta":
            self._usage(event.get("usage") or {})
            delta = event.get("delta") or {}
            if delta.get("stop_reason"):
                self._ended = True
                finish = _FINISH.get(delta["stop_reason"], "stop")
                return [(0, GenerationDone(finish, 0, 0, 0, delta.get("stop_sequence")))]
        return []

    def _usage(self, usage: dict[str, Any]) -> None:
        # Cumulative counts; input tokens read from the cache are counted apart from the rest.
        if usage.get("input_tokens") is not None or usage.get("cache_read_input_tokens") is not None:
            self._cached = int(usage.get("cache_read_input_tokens") or 0)
            self._written = int(usage.get("cache_creation_input_tokens") or 0)
            self._input_tokens = int(usage.get("input_tokens") or 0) + self._written + self._cached
        if usage.get("output_tokens") is not None:
            self._output_tokens = int(usage["output_tokens"])

    def usage(self) -> UsageReport | None:
        if not (self._input_tokens or self._output_tokens):
            return None
        return UsageReport(self._input_tokens, self._output_tokens, self._cached, self._written)

    @property
    def ended(self) -> bool:
        return self._ended


def refuse_completions() -> Unsupported:
    return Unsupported(
        "this model's server speaks Anthropic's Messages API, which continues no raw prompt: use chat",
        subject=Subject.PROMPT,
    )


def _mark_cache_breakpoint(body: dict[str, Any], prefix: CachePrefix) -> None:
    """Put the caller's last ``cache_control`` breakpoint on the same block of the upstream body."""
    control: dict[str, Any] = {"type": "ephemeral", **({"ttl": "1h"} if prefix.ttl_s > 300 else {})}
    system, turns = conversation(prefix.messages)
    blocks = sum(len(turn["content"]) for turn in turns)
    if blocks:
        for turn in body["messages"]:
            content = turn["content"]
            if blocks <= len(content):
                content[blocks - 1] = {**content[blocks - 1], "cache_control": control}
                return
            blocks -= len(content)
    elif system is not None and isinstance(body.get("system"), str):
        body["system"] = [{"type": "text", "text": body["system"], "cache_control": control}]
    elif prefix.tools and body.get("tools"):
        body["tools"][min(len(prefix.tools), len(body["tools"])) - 1]["cache_control"] = control
