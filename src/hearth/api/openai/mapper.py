"""OpenAI requests to the neutral model, refusing what we know but cannot honour."""

from __future__ import annotations

from hearth.api.images import image_from_url
from hearth.api.mapping import ROLES, default_choice, function_tools, prompt_cache_key
from hearth.api.openai import protocol as oa
from hearth.errors import InvalidRequest, Subject, Unsupported
from hearth.inference.types import (
    ChatRequest,
    CompletionRequest,
    EmbedRequest,
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


def sampling(body: oa.SamplingFields, max_tokens: int | None) -> SamplingOptions:
    if body.logprobs:
        raise Unsupported("logprobs are not supported yet", param="logprobs")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=tuple(stops),
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        logit_bias={int(k): v for k, v in (body.logit_bias or {}).items()},
    )


def message(item: oa.ChatMessage, index: int) -> Message:
    parts: list[Part] = []
    if isinstance(item.content, str):
        parts.append(TextPart(item.content))
    elif item.content is not None:
        for j, part in enumerate(item.content):
            if isinstance(part, oa.TextPart):
                parts.append(TextPart(part.text))
            else:
                parts.append(image_from_url(part.image_url.url, f"messages[{index}].content[{j}].image_url"))
    calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in item.tool_calls or [])
    return Message(
        ROLES[item.role], tuple(parts), calls, item.tool_call_id, item.name, origin=f"messages[{index}]"
    )


def messages(items: list[oa.ChatMessage]) -> tuple[Message, ...]:
    return tuple(message(item, i) for i, item in enumerate(items))


def tools(body: oa.ChatCompletionRequest) -> tuple[tuple[Tool, ...], ToolChoice]:
    listed = function_tools(body.tools)
    choice = body.tool_choice
    resolved: ToolChoice
    if choice is None:
        resolved = default_choice(listed)
    elif isinstance(choice, oa.NamedToolChoice):
        resolved = NamedTool(choice.function.name)
    else:
        resolved = choice
    return listed, resolved


def output_format(body: oa.ChatCompletionRequest) -> OutputFormat | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return OutputFormat("json_object", param="response_format")
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise InvalidRequest(
            "response_format json_schema needs json_schema.schema", param="response_format.json_schema"
        )
    schema = fmt.json_schema
    return OutputFormat(
        "json_schema",
        schema.schema_,
        schema.name,
        bool(schema.strict),
        param="response_format.json_schema.schema",
    )


def chat_request(body: oa.ChatCompletionRequest) -> ChatRequest:
    listed, choice = tools(body)
    return ChatRequest(
        model=body.model,
        messages=messages(body.messages),
        sampling=sampling(body, body.max_completion_tokens or body.max_tokens),
        n=body.n,
        stream=body.stream,
        tools=listed,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls,
        output=output_format(body),
        passthrough=passthrough(body),
        cache_key=prompt_cache_key(body),
        priority=body.priority,
    )


def completion_request(body: oa.CompletionRequest) -> CompletionRequest:
    if body.echo:
        raise Unsupported("echo is not supported", param="echo")
    if body.suffix:
        raise Unsupported("suffix is not supported", param="suffix")
    if body.best_of not in (None, 1):
        raise Unsupported("best_of is not supported", param="best_of")
    prompt = body.prompt
    prompts: list[str | tuple[int, ...]]
    if isinstance(prompt, str):
        prompts = [prompt]
    elif not prompt:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    elif all(isinstance(x, int) for x in prompt):
        prompts = [tuple(x for x in prompt if isinstance(x, int))]
    else:
        prompts = [x if isinstance(x, str) else tuple(x) for x in prompt if isinstance(x, str | list)]
    return CompletionRequest(
        model=body.model,
        prompts=tuple(prompts),
        sampling=sampling(body, body.max_tokens),
        n=body.n,
        stream=body.stream,
        passthrough=passthrough(body),
        priority=body.priority,
    )


def embed_request(body: oa.EmbeddingRequest) -> EmbedRequest:
    inp = body.input
    if isinstance(inp, str):
        inp = [inp]
    if not inp:
        raise InvalidRequest("input must not be empty", param="input")
    if not all(isinstance(x, str) for x in inp):
        raise InvalidRequest("token-id input is not supported by this model; send strings", param="input")
    if len(inp) > 2048:
        raise InvalidRequest("at most 2048 inputs per request", param="input")
    return EmbedRequest(body.model, tuple(str(x) for x in inp), body.dimensions)


def passthrough(body: oa.SamplingFields) -> Passthrough | None:
    """The fields OpenAI's protocol here does not name, for an OpenAI-dialect upstream."""
    extra = dict(body.model_extra or {})
    return Passthrough("openai", extra) if extra else None


def words(body: oa.ChatCompletionRequest) -> dict[Subject, str]:
    """The field names this request used where OpenAI has two (errors name the one it sent)."""
    if body.max_completion_tokens is not None:
        return {Subject.OUTPUT_LIMIT: "max_completion_tokens"}
    return {}


def include_usage(body: oa.SamplingFields) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)
