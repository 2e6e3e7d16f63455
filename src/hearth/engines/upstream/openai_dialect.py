"""The neutral request in OpenAI's dialect, and OpenAI's stream back in neutral events.

What OpenAI itself defines goes as OpenAI names it. Sampling OpenAI lacks (``top_k``,
``min_p``, a repeat penalty) goes only when the caller or the model's config set it, under the
names vLLM, SGLang and llama-server read (a cloud API would refuse them). The stream always asks
for usage (``stream_options.include_usage``), so the ledger gets the upstream's own counts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from hearth.errors import UpstreamFailure
from hearth.inference.events import (
    FinishReason,
    GenerationDone,
    TextDelta,
    ToolCallDelta,
    UpstreamEvent,
    UsageReport,
    estimated_tokens,
)
from hearth.inference.types import (
    ChatRequest,
    CompletionRequest,
    ImagePart,
    Message,
    NamedTool,
    OutputFormat,
    Passthrough,
    SamplingOptions,
    TextPart,
    ToolChoice,
)

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def image_url(part: ImagePart) -> str:
    if part.data is None:
        return part.url or ""
    return f"data:{part.media_type or 'image/png'};base64,{base64.b64encode(part.data).decode()}"


def message(item: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": item.role}
    if item.images:
        content: list[dict[str, Any]] = []
        for part in item.parts:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            else:
                content.append({"type": "image_url", "image_url": {"url": image_url(part)}})
        out["content"] = content
    else:
        out["content"] = item.text if item.parts or not item.tool_calls else None
    if item.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in item.tool_calls
        ]
    if item.role == "tool" and item.tool_call_id is not None:
        out["tool_call_id"] = item.tool_call_id
    if item.name and item.role != "tool":
        out["name"] = item.name
    return out


def sampling(options: SamplingOptions) -> dict[str, Any]:
    body: dict[str, Any] = {}
    standard = {
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "seed": options.seed,
    }
    body.update({k: v for k, v in standard.items() if v is not None})
    if options.stop:
        body["stop"] = list(options.stop)
    if options.presence_penalty:
        body["presence_penalty"] = options.presence_penalty
    if options.frequency_penalty:
        body["frequency_penalty"] = options.frequency_penalty
    if options.logit_bias:
        body["logit_bias"] = {str(k): v for k, v in options.logit_bias.items()}
    # Not OpenAI's: sent only when set, under the names the open engines read.
    if options.top_k is not None:
        body["top_k"] = options.top_k
    if options.min_p is not None:
        body["min_p"] = options.min_p
    if options.repeat_penalty is not None:
        body["repetition_penalty"] = body["repeat_penalty"] = options.repeat_penalty
    return body


def tool_choice(choice: ToolChoice) -> Any:
    if isinstance(choice, NamedTool):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def response_format(output: OutputFormat) -> dict[str, Any]:
    if output.kind == "json_object":
        return {"type": "json_object"}
    schema = {"name": output.name or "output", "schema": dict(output.schema or {}), "strict": output.strict}
    return {"type": "json_schema", "json_schema": schema}


def streaming(stream: bool) -> dict[str, Any]:
    """A streamed request always asks for the usage chunk, so the ledger gets the server's own
    counts; an unstreamed one is asked for unstreamed (its answer carries usage anyway)."""
    return {"stream": True, "stream_options": {"include_usage": True}} if stream else {"stream": False}


def chat_body(request: ChatRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [message(m) for m in request.messages],
        **streaming(request.stream),
        **sampling(request.sampling),
    }
    if request.n != 1:
        body["n"] = request.n
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)},
            }
            for t in request.tools
        ]
        body["tool_choice"] = tool_choice(request.tool_choice)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.output is not None:
        body["response_format"] = response_format(request.output)
    return with_passthrough(body, request.passthrough)


def with_passthrough(body: dict[str, Any], passthrough: Passthrough | None) -> dict[str, Any]:
    """The caller's unmodeled OpenAI fields, under what Hearth sends (which wins)."""
    if passthrough is None or passthrough.dialect != "openai":
        return body
    return {**passthrough.fields, **body}


def completion_body(request: CompletionRequest, model: str) -> dict[str, Any]:
    prompts: Sequence[str] = [p for p in request.prompts if isinstance(p, str)]
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompts[0] if len(prompts) == 1 else list(prompts),
        **streaming(request.stream),
        **sampling(request.sampling),
    }
    if request.n != 1:
        body["n"] = request.n
    if request.output is not None:
        body["response_format"] = response_format(request.output)
    return with_passthrough(body, request.passthrough)


def whole_as_chunks(answer: Any) -> list[Any]:
    """An unstreamed answer (chat or completions) as the stream chunks that say the same, so one
    reader serves both: each message becomes its choice's one delta, with its tool calls."""
    if not isinstance(answer, dict) or "error" in answer:
        return [answer]
    choices = []
    for choice in answer.get("choices") or []:
        if not isinstance(choice, dict):
            raise UpstreamFailure("the upstream's answer has a choice that is not an object")
        whole: dict[str, Any] = {
            "index": choice.get("index", 0),
            "finish_reason": choice.get("finish_reason"),
        }
        message = choice.get("message")
        if isinstance(message, dict):
            calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
            tool_calls = [{**call, "index": i} for i, call in enumerate(calls)]
            whole["delta"] = {"content": message.get("content"), "tool_calls": tool_calls}
        else:
            whole["text"] = choice.get("text")
        choices.append(whole)
    return [{"choices": choices, "usage": answer.get("usage")}]


class StreamReader:
    """OpenAI's chunks (chat or completions) as neutral events, choice by choice.

    Until the server's usage arrives each chunk of text counts as a token; the text of a whole
    answer counts as its estimate (a server that sends no usage is still never billed as 0).
    """

    def __init__(self, whole: bool = False) -> None:
        self._usage: UsageReport | None = None
        self._whole = whole

    def read(self, chunk: Any) -> list[UpstreamEvent]:
        if not isinstance(chunk, dict):
            raise UpstreamFailure("the upstream sent a stream event that is not an object")
        if "error" in chunk:  # vLLM and others report a failure mid-stream as a chunk
            error = chunk["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise UpstreamFailure(f"the upstream failed mid-stream: {detail}")
        events: list[UpstreamEvent] = []
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            delta = choice.get("delta")
            text = choice.get("text") if delta is None else delta.get("content")
            if text:
                events.append((index, TextDelta(text, estimated_tokens(len(text)) if self._whole else 1)))
            for call in (delta or {}).get("tool_calls") or []:
                function = call.get("function") or {}
                events.append(
                    (
                        index,
                        ToolCallDelta(
                            int(call.get("index", 0)),
                            function.get("arguments") or "",
                            call.get("id"),
                            function.get("name"),
                        ),
                    )
                )
            if choice.get("finish_reason"):
                events.append((index, GenerationDone(_FINISH.get(choice["finish_reason"], "stop"), 0, 0)))
        usage = chunk.get("usage")
        if isinstance(usage, dict):  # cumulative where an engine sends it on every chunk
            details = usage.get("prompt_tokens_details") or {}
            self._usage = UsageReport(
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                int(details.get("cached_tokens") or 0),
            )
        return events

    def usage(self) -> UsageReport | None:
        return self._usage


def context_length(models: Any, model: str) -> int | None:
    """The context an OpenAI-compatible server states for ``model`` in ``GET /models``: vLLM's
    and SGLang's ``max_model_len``, another Hearth's ``details.context_length``, or
    llama-server's training context as the last resort."""
    cards = [
        c for c in (models.get("data") if isinstance(models, dict) else None) or [] if isinstance(c, dict)
    ]
    # A server of one model (llama-server) serves it whatever name the request gives.
    named = [c for c in cards if c.get("id") == model] or (cards if len(cards) == 1 else [])
    for card in named:
        details = card.get("details") or {}
        meta = card.get("meta") or {}
        for value in (card.get("max_model_len"), card.get("context_length"), details.get("context_length"),
                      meta.get("n_ctx_train")):  # fmt: skip
            if isinstance(value, int) and value > 0:
                return value
    return None


def runtime_context(props: Any) -> int | None:
    """llama-server's ``GET /props``: the context each of its slots has."""
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    value = settings.get("n_ctx") if isinstance(settings, dict) else None
    return value if isinstance(value, int) and value > 0 else None
