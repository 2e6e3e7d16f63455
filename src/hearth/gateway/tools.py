"""Tools and structured output for a chat: the checks, the prompt and the grammar, once for every family.

A model whose chat template lays out tools (Hermes-style ``<tool_call>`` templates) gets them
through its template. Any other model gets Hearth's generic tool prompt, a system message that
lists the tools and the call format (documented in the README); earlier calls and their results
are written into the conversation the same way. Either way the output is constrained by a
grammar: ``required`` must produce a call and a named tool exactly one, ``auto`` lets the model
choose between text and calls, ``none`` (after calls) allows text without call markup, and a
call it starts is a valid call, so its arguments always parse and validate against the tool's
``parameters``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from hearth.engines import constraints
from hearth.engines.base import ChatEngine
from hearth.errors import InvalidRequest, Subject, Unsupported
from hearth.inference.types import ChatRequest, Message, NamedTool, OutputFormat, TextPart, Tool

FORMAT = (
    constraints.HERMES
)  # what calls look like in the text: <tool_call>\n{"name", "arguments"}\n</tool_call>


@dataclass(frozen=True)
class ToolPlan:
    """What a chat needs for its tools or output format: the grammar, and how to prompt for it."""

    constraint: constraints.Constraint | None
    calls: bool  # the output may hold tool calls, to be parsed into ToolCallDeltas
    messages: tuple[Message, ...]  # the conversation as the model will read it
    template_tools: tuple[Tool, ...]  # tools handed to the chat template (those that render them)
    # Under ``auto``: the calls the conversation already holds results for, and the grammar of
    # a text answer, used when the model only repeats those calls (see tool_stream.py).
    answered: frozenset[tuple[str, str]] = frozenset()
    answer: constraints.Constraint | None = None


def plan_tools(engine: ChatEngine, request: ChatRequest, messages: Sequence[Message]) -> ToolPlan:
    check_history(messages)
    active = bool(request.tools) and request.tool_choice != "none"
    if request.tool_choice == "required" and not request.tools:
        raise InvalidRequest("{tool_choice} 'required' needs at least one tool", subject=Subject.TOOL_CHOICE)
    if isinstance(request.tool_choice, NamedTool) and not request.tools:
        raise InvalidRequest(
            "{tool_choice} names a tool, but no tools were given", subject=Subject.TOOL_CHOICE
        )
    history = tuple(messages) if engine.template_renders_tools else tuple(_as_text_history(messages))
    if not active and request.output is None:
        if engine.supports_constraints and (request.tools or any(m.tool_calls for m in messages)):
            # Earlier calls are in the conversation as markup, which a small model copies into
            # its answer when it may not call: its text must never hold the marker.
            return ToolPlan(constraints.text_without_calls(FORMAT), False, history, ())
        return ToolPlan(None, False, history, ())
    if not engine.supports_constraints:
        what = "tools" if active else "structured output"
        raise Unsupported(f"the model {engine.spec.id!r} cannot constrain its output, so it cannot do {what}")
    if active and request.output is not None:
        raise Unsupported(
            "a response format together with tools the model may call is not supported: use "
            "{tool_choice} 'none', or a tool whose parameters are that schema",
            subject=Subject.OUTPUT_FORMAT,
            param=request.output.param,
        )
    if not active:
        assert request.output is not None
        return ToolPlan(output_constraint(request.output), False, history, ())
    constraint = constraints.tool_calls(
        [constraints.Tool(t.name, dict(t.parameters), param=t.param) for t in request.tools],
        "named"
        if isinstance(request.tool_choice, NamedTool)
        else "auto"
        if request.tool_choice == "auto"
        else "required",
        name=request.tool_choice.name if isinstance(request.tool_choice, NamedTool) else None,
        parallel=_parallel(request),
        fmt=FORMAT,
    )
    answered = answered_calls(messages) if request.tool_choice == "auto" else frozenset()
    answer = constraints.text_without_calls(FORMAT) if answered else None
    if engine.template_renders_tools:
        return ToolPlan(constraint, True, tuple(messages), request.tools, answered, answer)
    prompted = [tool_prompt(request.tools, request.tool_choice), *history]
    return ToolPlan(constraint, True, tuple(_merge_system(prompted)), (), answered, answer)


def answered_calls(messages: Sequence[Message]) -> frozenset[tuple[str, str]]:
    """``(name, arguments)`` of every earlier call that a tool result answers."""
    results = {m.tool_call_id for m in messages if m.role == "tool"}
    return frozenset(call_key(c.name, c.arguments) for m in messages for c in m.tool_calls if c.id in results)


def call_key(name: str, arguments: str) -> tuple[str, str]:
    """A call as compared for repeats: its name, and its arguments as canonical JSON."""
    try:
        canonical = json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = arguments
    return name, canonical


def _parallel(request: ChatRequest) -> bool:
    """Whether the turn may hold several calls. A named choice calls exactly that function once
    (OpenAI's and Anthropic's semantics); ``required`` makes one call unless the caller asked
    for parallel calls in so many words (a small model otherwise fills the turn with variants
    of one call); ``auto`` allows several unless they were turned off, as the APIs default."""
    if isinstance(request.tool_choice, NamedTool):
        return False
    if request.tool_choice == "required":
        return request.parallel_tool_calls is True
    return request.parallel_tool_calls is not False


def output_constraint(output: OutputFormat) -> constraints.Constraint:
    at = constraints.At(Subject.OUTPUT_FORMAT, output.param)
    if output.kind == "json_object":
        return constraints.json_object(at=at)
    return constraints.json_schema(dict(output.schema or {}), at=at)


def check_history(messages: Sequence[Message]) -> None:
    """Each tool result must answer a call an assistant turn made before it."""
    made: set[str] = set()
    for message in messages:
        made.update(call.id for call in message.tool_calls)
        if message.role == "tool" and message.tool_call_id is not None and message.tool_call_id not in made:
            where = message.origin or "a tool result"
            raise InvalidRequest(
                f"{where} answers the tool call {message.tool_call_id!r}, which no earlier "
                "assistant message made",
                subject=Subject.PROMPT,
                param=None if message.origin is None else f"{message.origin}.tool_call_id",
            )


def tool_prompt(tools: Sequence[Tool], choice: object) -> Message:
    """Hearth's generic tool prompt, for models whose template has no tools of its own."""
    listed = "\n".join(
        f"- {t.name}: {t.description or 'no description'}\n  parameters (JSON schema): "
        f"{json.dumps(dict(t.parameters), separators=(',', ':'))}"
        for t in tools
    )
    if isinstance(choice, NamedTool):
        rule = f"You must call the tool {choice.name}."
    elif choice == "required":
        rule = "You must call one of the tools."
    else:
        rule = (
            "Call a tool only when it helps; otherwise answer normally, in plain text. Once a "
            "tool's result answers the question, answer in plain text: never repeat a call "
            "whose result you already have."
        )
    return Message.of(
        "system",
        "You can call these tools:\n"
        f"{listed}\n\n"
        "To call a tool, reply with only this, one block per call:\n"
        f'{FORMAT.open}{{"name": "<tool name>", "{FORMAT.arguments_key}": {{<arguments as JSON>}}}}{FORMAT.close}\n'
        f"{rule} A tool's result comes back in a later message.",
    )


def format_call(name: str, arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = arguments
    body = json.dumps({"name": name, FORMAT.arguments_key: parsed}, separators=(", ", ": "))
    return f"{FORMAT.open}{body}{FORMAT.close}"


ANSWER_NOW = (
    "Answer the question with these results, in plain text. Call a tool again only for something "
    "these results do not give."
)


def _as_text_history(messages: Sequence[Message]) -> list[Message]:
    """Earlier calls and results as plain text, for templates that know no tool roles or fields.

    A result is labelled with the call it answers (name and arguments), and the results that
    end the conversation say to answer with them: a small model shown a bare result tends to
    make the same call again."""
    out: list[Message] = []
    calls_by_id = {c.id: c for m in messages for c in m.tool_calls}
    last_turn = max((i for i, m in enumerate(messages) if m.role != "tool"), default=-1)
    for index, message in enumerate(messages):
        if message.tool_calls:
            calls = FORMAT.separator.join(format_call(c.name, c.arguments) for c in message.tool_calls)
            text = f"{message.text}\n{calls}" if message.text else calls
            out.append(Message("assistant", (TextPart(text),)))
        elif message.role == "tool":
            call = calls_by_id.get(message.tool_call_id or "")
            label = (
                f"{call.name} {call.arguments}"
                if call
                else message.name or message.tool_call_id or "the tool"
            )
            text = f"[result of {label}]\n{message.text}"
            if index == len(messages) - 1 and index > last_turn:
                text = f"{text}\n\n{ANSWER_NOW}"
            out.append(Message.of("user", text))
        else:
            out.append(message)
    return out


def _merge_system(messages: list[Message]) -> list[Message]:
    """One system message: the tool prompt first, then the caller's own system text."""
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    if len(system) < 2:
        return messages
    return [Message.of("system", "\n\n".join(m.text for m in system)), *rest]
