"""Chat templates: the model's Jinja template, a configured override, or a plain fallback.

Precedence: ``ModelSpec.chat_template`` ("config"), then the GGUF's ``tokenizer.chat_template``
("gguf"), then the fallback ("fallback") for models that ship none. The fallback writes one
``<role>: <content>`` line per message and opens the reply with ``assistant:``::

    system: You are terse.
    user: Hi
    assistant: Hello.
    user: How are you?
    assistant:

Jinja templates run in a sandbox (a template is data from a model file or a config) with the
helpers Hugging Face templates expect: ``raise_exception``, ``strftime_now``, and a ``tojson``
that keeps non-ASCII text. Some templates (Gemma's among them) reject roles they don't know or
require strict user/assistant alternation; when rendering fails we retry once with the
conversation normalised (system text folded into the first user turn, consecutive same-role
turns merged) before reporting the template's own error as an invalid request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hearth.errors import InvalidRequest, Subject
from hearth.inference.types import Message

TemplateOrigin = Literal["config", "gguf", "fallback"]


def _raise_exception(message: str) -> NoReturn:
    raise jinja2.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, **_: Any) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    return env


TemplateMessage = dict[str, Any]


def template_messages(messages: Sequence[Message]) -> list[TemplateMessage]:
    """Neutral messages as Hugging Face chat templates expect them.

    Assistant tool calls carry their arguments parsed (templates ``tojson`` them), and tool
    results carry the id and name of the call they answer.
    """
    out: list[TemplateMessage] = []
    for message in messages:
        item: TemplateMessage = {"role": message.role, "content": message.text}
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _parsed(call.arguments)},
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id is not None:
            item["tool_call_id"] = message.tool_call_id
        if message.name is not None:
            item["name"] = message.name
        out.append(item)
    return out


def _parsed(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def plain_render(messages: Sequence[TemplateMessage]) -> str:
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def normalise(messages: Sequence[TemplateMessage]) -> list[TemplateMessage]:
    """Fold system turns into the next user turn and merge consecutive turns of one role."""
    pending_system: list[str] = []
    out: list[TemplateMessage] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            pending_system.append(content)
            continue
        if role == "user" and pending_system:
            content = "\n\n".join([*pending_system, content])
            pending_system.clear()
        if out and out[-1]["role"] == role:
            out[-1] = {"role": role, "content": out[-1]["content"] + "\n\n" + content}
        else:
            out.append({"role": role, "content": content})
    if pending_system:  # a system prompt with no user turn after it still needs to be seen
        out.append({"role": "user", "content": "\n\n".join(pending_system)})
    return out


class ChatTemplate:
    def __init__(self, source: str | None, origin: TemplateOrigin, *, bos_token: str, eos_token: str) -> None:
        self.origin: TemplateOrigin = origin if source else "fallback"
        self._context = {"bos_token": bos_token, "eos_token": eos_token}
        self._template: jinja2.Template | None = None
        # Hermes-style templates (Qwen 2.5/3, Hermes, SmolLM3 and others) lay out ``tools`` and
        # write calls as <tool_call>{...}</tool_call>: those get the tools through the template.
        self._hermes_tools = bool(source) and "tools" in (source or "") and "<tool_call>" in (source or "")
        if source:
            try:
                self._template = _environment().from_string(source)
            except jinja2.TemplateError as exc:
                if origin == "config":
                    raise ValueError(f"the configured chat_template does not compile: {exc}") from exc
                self.origin = "fallback"  # a broken template in a model file: serve it anyway

    @property
    def renders_tools(self) -> bool:
        """Whether the template itself lays out ``tools`` and their calls, Hermes-style."""
        return self._template is not None and self._hermes_tools

    def render(self, messages: Sequence[TemplateMessage], tools: Sequence[TemplateMessage] = ()) -> str:
        if self._template is None:
            return plain_render(messages)
        listed = list(tools) or None
        try:
            return self._render(list(messages), listed)
        except jinja2.TemplateError as first:
            retry = normalise(messages)
            if retry == list(messages):
                raise InvalidRequest(
                    f"the chat template rejected the messages: {first}", subject=Subject.PROMPT
                ) from first
            try:
                return self._render(retry, listed)
            except jinja2.TemplateError:
                raise InvalidRequest(
                    f"the chat template rejected the messages: {first}", subject=Subject.PROMPT
                ) from first

    def _render(self, messages: list[TemplateMessage], tools: list[TemplateMessage] | None) -> str:
        assert self._template is not None
        return self._template.render(
            messages=messages, tools=tools, add_generation_prompt=True, **self._context
        )
