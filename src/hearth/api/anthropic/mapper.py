"""Anthropic Messages requests to the neutral model, refusing what we know but cannot honour.

Anthropic has two roles; tool results travel as ``tool_result`` blocks inside a user turn.
They become neutral ``tool`` messages, in the order they were sent, so that every family's
conversation reaches the chat template in the same form.
"""

from __future__ import annotations

import dataclasses
import json

from hearth.api.anthropic import protocol as an
from hearth.api.anthropic.caching import cache_prefix
from hearth.api.images import image_from_base64, image_from_url
from hearth.api.mapping import default_choice
from hearth.errors import InvalidRequest, Unsupported
from hearth.inference.types import (
    ChatRequest,
    ImagePart,
    Message,
    NamedTool,
    OutputFormat,
    Part,
    Passthrough,
    SamplingOptions,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)


def _image(block: an.ImageBlock, param: str) -> ImagePart:
    source = block.source
    if isinstance(source, an.UrlImageSource):
        return image_from_url(source.url, f"{param}.source.url")
    return image_from_base64(source.data, f"{param}.source.data", source.media_type)


def _tool_result(block: an.ToolResultBlock, param: str) -> Message:
    parts: list[Part] = []
    if isinstance(block.content, str):
        parts.append(TextPart(block.content))
    for j, item in enumerate(block.content if isinstance(block.content, list) else []):
        if isinstance(item, an.TextBlock):
            parts.append(TextPart(item.text))
        else:
            parts.append(_image(item, f"{param}.content[{j}]"))
    return Message("tool", tuple(parts), tool_call_id=block.tool_use_id, origin=param)


def _refuse(block: an.ContentBlock, role: str, param: str) -> InvalidRequest:
    if isinstance(block, an.OtherBlock):
        return Unsupported(f"{param}: content blocks of type {block.type!r} are not supported", param=param)
    return InvalidRequest(f"{param}: {block.type} blocks are not allowed in {role} messages", param=param)


def _user(item: an.InputMessage, index: int) -> list[Message]:
    origin = f"messages[{index}]"
    if isinstance(item.content, str):
        return [Message("user", (TextPart(item.content),), origin=origin)]
    out: list[Message] = []
    pending: list[Part] = []
    for j, block in enumerate(item.content):
        param = f"messages[{index}].content[{j}]"
        if isinstance(block, an.TextBlock):
            pending.append(TextPart(block.text))
        elif isinstance(block, an.ImageBlock):
            pending.append(_image(block, param))
        elif isinstance(block, an.ToolResultBlock):
            if pending:
                out.append(Message("user", tuple(pending), origin=origin))
                pending = []
            out.append(_tool_result(block, param))
        else:
            raise _refuse(block, "user", param)
    if pending or not out:
        out.append(Message("user", tuple(pending), origin=origin))
    return out


def _assistant(item: an.InputMessage, index: int) -> Message:
    origin = f"messages[{index}]"
    if isinstance(item.content, str):
        return Message("assistant", (TextPart(item.content),), origin=origin)
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(item.content):
        if isinstance(block, an.TextBlock):
            parts.append(TextPart(block.text))
        elif isinstance(block, an.ToolUseBlock):
            calls.append(ToolCall(block.id, block.name, json.dumps(block.input, ensure_ascii=False)))
        else:
            raise _refuse(block, "assistant", f"messages[{index}].content[{j}]")
    return Message("assistant", tuple(parts), tuple(calls), origin=origin)


def _mapped(item: an.InputMessage, index: int) -> list[Message]:
    return _user(item, index) if item.role == "user" else [_assistant(item, index)]


def messages(body: an.CountTokensRequest | an.MessagesRequest) -> tuple[Message, ...]:
    out: list[Message] = []
    system = body.system
    if isinstance(system, str) and system:
        out.append(Message("system", (TextPart(system),), origin="system"))
    elif isinstance(system, list) and system:
        out.append(Message("system", tuple(TextPart(b.text) for b in system), origin="system"))
    for i, item in enumerate(body.messages):
        out.extend(_mapped(item, i))
    if body.messages[-1].role == "assistant":
        # Anthropic continues a final assistant turn; the chat templates here would close it.
        last = len(body.messages) - 1
        raise Unsupported(
            "continuing a final assistant message (prefill) is not supported yet; end with a user message",
            param=f"messages[{last}]",
        )
    return tuple(out)


def tools(
    body: an.CountTokensRequest | an.MessagesRequest,
) -> tuple[tuple[Tool, ...], ToolChoice, bool | None]:
    listed: list[Tool] = []
    for i, spec in enumerate(body.tools or []):
        if spec.type not in (None, "custom") or spec.input_schema is None:
            raise Unsupported(
                f"tools[{i}]: only custom tools with an input_schema are supported, not {spec.type!r}",
                param=f"tools[{i}]",
            )
        listed.append(
            Tool(spec.name, spec.description or "", spec.input_schema, param=f"tools[{i}].input_schema")
        )
    choice = body.tool_choice
    resolved: ToolChoice
    if choice is None:
        resolved = default_choice(listed)
    elif isinstance(choice, an.ToolChoiceTool):
        resolved = NamedTool(choice.name)
    elif isinstance(choice, an.ToolChoiceAny):
        resolved = "required"
    else:
        resolved = choice.type
    parallel = False if getattr(choice, "disable_parallel_tool_use", False) else None
    return tuple(listed), resolved, parallel


def _refuse_thinking(body: an.CountTokensRequest | an.MessagesRequest) -> None:
    if body.thinking is not None and body.thinking.type != "disabled":
        raise Unsupported("extended thinking is not supported by these models", param="thinking")


def output_format(body: an.CountTokensRequest | an.MessagesRequest) -> OutputFormat | None:
    config = body.output_config
    if config is None or config.format is None:
        return None
    return OutputFormat("json_schema", config.format.schema_, param="output_config.format.schema")


def count_request(body: an.CountTokensRequest | an.MessagesRequest) -> ChatRequest:
    """The conversation, tools and output format: what ``count_tokens`` counts, and what a
    message request generates from."""
    _refuse_thinking(body)
    listed, choice, parallel = tools(body)
    return ChatRequest(
        model=body.model,
        messages=messages(body),
        tools=listed,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        output=output_format(body),
        cache_prefix=cache_prefix(body, listed, _mapped),
    )


def chat_request(body: an.MessagesRequest) -> ChatRequest:
    sampling = SamplingOptions(
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        stop=tuple(body.stop_sequences or ()),
    )
    extra = dict(body.model_extra or {})
    if body.metadata is not None:
        extra["metadata"] = body.metadata.model_dump(exclude_none=True)
    passthrough = Passthrough("anthropic", extra) if extra else None
    return dataclasses.replace(
        count_request(body), sampling=sampling, stream=body.stream, passthrough=passthrough
    )
