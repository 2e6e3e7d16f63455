"""Responses API requests to the neutral ``NewResponse``, refusing what we know but cannot honour.

Each input item becomes one neutral message (function calls an assistant turn with a tool call,
function-call outputs a ``tool`` turn) and is kept as clients list it back, with an id.
"""

from __future__ import annotations

from typing import Any

from hearth.api.ids import new_id
from hearth.api.images import image_from_url
from hearth.api.mapping import ROLES, default_choice, prompt_cache_key
from hearth.api.openai.responses import protocol as rs
from hearth.errors import InvalidRequest, Unsupported
from hearth.inference.responses import InputItem, NewResponse
from hearth.inference.types import (
    Message,
    NamedTool,
    OutputFormat,
    Part,
    SamplingOptions,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)


def _id(given: str | None, prefix: str) -> str:
    return given or new_id(prefix, "_")


def _parts(content: str | list[Any], param: str) -> tuple[tuple[Part, ...], list[dict[str, Any]]]:
    """Neutral parts, and the content as listed back (a string becomes one text part)."""
    if isinstance(content, str):
        return (TextPart(content),), [{"type": "input_text", "text": content}]
    parts: list[Part] = []
    listed: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if isinstance(part, rs.InputText | rs.OutputTextPart):
            parts.append(TextPart(part.text))
        elif isinstance(part, rs.RefusalPart):
            parts.append(TextPart(part.refusal))
        elif isinstance(part, rs.InputImage):
            if part.image_url is None:
                raise Unsupported("input_image needs an image_url (file ids are not supported)", param=where)
            parts.append(image_from_url(part.image_url, where + ".image_url"))
        else:
            raise Unsupported(f"content parts of type {part.type!r} are not supported", param=where)
        listed.append(part.model_dump(mode="json", by_alias=True, exclude_none=True))
    return tuple(parts), listed


def _message(item: rs.MessageItem, param: str) -> InputItem:
    parts, listed = _parts(item.content, param + ".content")
    item_id = _id(item.id, "msg")
    if item.role == "assistant":  # listed as the output message it was
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        shown: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    else:
        shown = {
            "id": item_id,
            "type": "message",
            "role": item.role,
            "status": "completed",
            "content": listed,
        }
    return InputItem(item_id, Message(ROLES[item.role], parts, origin=param), shown)


def _item(item: Any, index: int) -> InputItem:
    param = f"input[{index}]"
    if isinstance(item, rs.MessageItem):
        return _message(item, param)
    if isinstance(item, rs.FunctionCallItem):
        item_id = _id(item.id, "fc")
        call = ToolCall(item.call_id, item.name, item.arguments)
        shown: dict[str, Any] = {
            "id": item_id,
            "type": "function_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
            "status": "completed",
        }
        return InputItem(item_id, Message("assistant", tool_calls=(call,), origin=param), shown)
    if isinstance(item, rs.FunctionCallOutputItem):
        item_id = _id(item.id, "fco")
        parts, listed = _parts(item.output, param + ".output")
        output: str | list[dict[str, Any]] = item.output if isinstance(item.output, str) else listed
        shown = {
            "id": item_id,
            "type": "function_call_output",
            "call_id": item.call_id,
            "output": output,
            "status": "completed",
        }
        return InputItem(item_id, Message("tool", parts, tool_call_id=item.call_id, origin=param), shown)
    raise Unsupported(f"input items of type {item.type!r} are not supported", param=param)


def input_items(body: rs.ResponseCreate) -> tuple[InputItem, ...]:
    if isinstance(body.input, str):
        return (_message(rs.MessageItem(role="user", content=body.input), "input"),)
    if not body.input and body.previous_response_id is None:
        raise InvalidRequest("input must not be empty", param="input")
    return tuple(_item(item, i) for i, item in enumerate(body.input))


def tools(body: rs.ResponseCreate) -> tuple[tuple[Tool, ...], ToolChoice]:
    listed: list[Tool] = []
    for i, spec in enumerate(body.tools or []):
        if not isinstance(spec, rs.FunctionTool):
            raise Unsupported(
                f"{spec.type!r} tools are not supported: only function tools", param=f"tools[{i}]"
            )
        params = spec.parameters or {"type": "object"}
        listed.append(Tool(spec.name, spec.description or "", params, param=f"tools[{i}].parameters"))
    choice = body.tool_choice
    resolved: ToolChoice
    if choice is None:
        resolved = default_choice(listed)
    elif isinstance(choice, rs.FunctionChoice):
        resolved = NamedTool(choice.name)
    elif isinstance(choice, dict):
        raise Unsupported(f"tool_choice of type {choice.get('type')!r} is not supported", param="tool_choice")
    else:
        resolved = choice
    return tuple(listed), resolved


def output_format(body: rs.ResponseCreate) -> OutputFormat | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return OutputFormat("json_object", param="text.format")
    if fmt.schema_ is None:
        raise InvalidRequest("text.format json_schema needs a schema", param="text.format.schema")
    return OutputFormat(
        "json_schema", fmt.schema_, fmt.name, fmt.strict is not False, param="text.format.schema"
    )


def _refuse_unsupported(body: rs.ResponseCreate) -> None:
    if body.conversation is not None:
        raise Unsupported(
            "conversation objects are not supported: chain responses with previous_response_id",
            param="conversation",
        )
    if body.prompt is not None:
        raise Unsupported("prompt templates are not supported", param="prompt")
    if body.top_logprobs or any("logprobs" in entry for entry in body.include or []):
        raise Unsupported("logprobs are not supported yet", param="top_logprobs")
    if body.background and body.stream:
        raise Unsupported("streaming a background response is not supported yet", param="stream")


def _tool_echo(tool: Any) -> dict[str, Any]:
    """A tool as the response lists it: a function tool always says ``strict`` and ``parameters``
    (the spec requires both); ``strict`` is true unless turned off, as OpenAI defaults it, and
    what Hearth's grammar does either way."""
    shown: dict[str, Any] = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(tool, rs.FunctionTool):
        shown.setdefault("strict", True)
        shown.setdefault("parameters", None)
    return shown


def _echo(body: rs.ResponseCreate, choice: Any) -> dict[str, Any]:
    """The request's parameters as the response object repeats them."""
    text = body.text.model_dump(mode="json", by_alias=True, exclude_none=True) if body.text else {}
    return {
        "max_output_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "tools": [_tool_echo(t) for t in body.tools or []],
        "tool_choice": choice,
        "text": {"format": {"type": "text"}, **text},
        "truncation": body.truncation or "disabled",
        "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        "metadata": body.metadata or {},
        "user": body.user,
        "prompt_cache_key": prompt_cache_key(body),
    }


def new_response(body: rs.ResponseCreate) -> NewResponse:
    _refuse_unsupported(body)
    listed, choice = tools(body)
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    raw_choice = body.tool_choice
    echoed_choice = (
        raw_choice.model_dump() if isinstance(raw_choice, rs.FunctionChoice) else raw_choice or "auto"
    )
    return NewResponse(
        model=body.model,
        input=input_items(body),
        instructions=body.instructions,
        previous_response_id=body.previous_response_id,
        store=body.store,
        background=body.background,
        stream=body.stream,
        sampling=SamplingOptions(
            max_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=tuple(stops),
        ),
        tools=listed,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls,
        output=output_format(body),
        truncation=body.truncation or "disabled",
        cache_key=prompt_cache_key(body),
        params=_echo(body, echoed_choice),
    )
