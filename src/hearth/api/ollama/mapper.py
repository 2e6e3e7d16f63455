"""Ollama requests to the neutral model, with Ollama's defaults, refusing what we cannot honour.

Sampling the caller leaves unset takes the model's configured defaults (``ModelSpec.sampling``,
as an Ollama Modelfile's ``PARAMETER`` lines), else Ollama's own (``api.DefaultOptions`` in
ollama/ollama: temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1), not the OpenAI
defaults the other families get. ``repeat_last_n`` is fixed at Ollama's 64.
"""

from __future__ import annotations

import json
import re

from hearth.api.images import image_from_base64
from hearth.api.mapping import default_choice, function_tools
from hearth.api.ollama import protocol as ol
from hearth.errors import InvalidRequest, Unsupported
from hearth.inference.types import (
    ChatRequest,
    CompletionRequest,
    EmbedRequest,
    ImagePart,
    Message,
    OutputFormat,
    Part,
    SamplingOptions,
    TextPart,
    ToolCall,
)

DEFAULTS: dict[str, float] = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1}
OLLAMA_SAMPLING = SamplingOptions(temperature=0.8, top_k=40, top_p=0.9, repeat_penalty=1.1)
MAX_INPUTS = 2048


def model_name(name: str) -> str:
    """Ollama names carry a tag; ``:latest`` is the default tag and names the model itself."""
    return name.removesuffix(":latest")


def tagged(model_id: str) -> str:
    """A model id as Ollama lists names: with a tag (``gemma-3-270m:latest``)."""
    return model_id if ":" in model_id else f"{model_id}:latest"


def sampling(options: ol.Options | None) -> SamplingOptions:
    o = options or ol.Options()
    max_tokens = o.num_predict if o.num_predict is not None and o.num_predict > 0 else None
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=o.temperature,
        top_p=o.top_p,
        top_k=o.top_k,
        min_p=o.min_p,
        seed=None if o.seed is None or o.seed < 0 else o.seed,
        stop=tuple(s for s in o.stop or [] if s),
        presence_penalty=o.presence_penalty or 0.0,
        frequency_penalty=o.frequency_penalty or 0.0,
        repeat_penalty=o.repeat_penalty,
    )


def num_ctx(options: ol.Options | None) -> int | None:
    return (options.num_ctx or None) if options is not None else None


def output_format(fmt: ol.Format) -> OutputFormat | None:
    if not fmt:
        return None
    if fmt == "json":
        return OutputFormat("json_object", param="format")
    assert isinstance(fmt, dict)
    return OutputFormat("json_schema", fmt, param="format")


def _check_common(model: str, think: ol.Think, logprobs: bool | None, top_logprobs: int | None) -> None:
    if isinstance(think, str):
        raise InvalidRequest(f"think value {think!r} is not supported for this model", param="think")
    if think:
        raise InvalidRequest(f'"{model}" does not support thinking', param="think")
    if logprobs or top_logprobs:
        raise Unsupported("logprobs are not supported yet", param="logprobs")


def images(data: list[str] | None, param: str) -> tuple[ImagePart, ...]:
    return tuple(image_from_base64(d, f"{param}[{j}]") for j, d in enumerate(data or []))


def message(item: ol.Message, index: int) -> Message:
    parts: list[Part] = [TextPart(item.content or "")]
    parts.extend(images(item.images, f"messages[{index}].images"))
    calls = tuple(
        ToolCall(c.id or f"call_{index}_{j}", c.function.name, json.dumps(c.function.arguments))
        for j, c in enumerate(item.tool_calls or [])
    )
    return Message(
        item.role, tuple(parts), calls, item.tool_call_id, item.tool_name, origin=f"messages[{index}]"
    )


def chat_request(body: ol.ChatRequest) -> ChatRequest:
    _check_common(body.model, body.think, body.logprobs, body.top_logprobs)
    tools = function_tools(body.tools)
    return ChatRequest(
        model=model_name(body.model),
        messages=tuple(message(m, i) for i, m in enumerate(body.messages)),
        sampling=sampling(body.options),
        stream=body.stream,
        tools=tools,
        tool_choice=default_choice(tools),
        output=output_format(body.format),
        truncation="disabled" if body.truncate is False else "auto",
        num_ctx=num_ctx(body.options),
        sampling_defaults=OLLAMA_SAMPLING,
        keep_alive_s=keep_alive(body.keep_alive),
    )


def generate_request(body: ol.GenerateRequest) -> CompletionRequest:
    _check_common(body.model, body.think, body.logprobs, body.top_logprobs)
    if body.raw and (body.template or body.system or body.context):
        raise InvalidRequest("raw mode does not support template, system, or context", param="raw")
    if body.suffix:
        raise Unsupported(f'"{body.model}" does not support insert', param="suffix")
    if body.template:
        raise Unsupported(
            "template overrides are not supported; the model's own chat template applies", param="template"
        )
    if body.context:
        raise Unsupported("context is deprecated by Ollama and not supported; use /api/chat", param="context")
    return CompletionRequest(
        model=model_name(body.model),
        prompts=(body.prompt or "",),
        sampling=sampling(body.options),
        stream=body.stream,
        output=output_format(body.format),
        raw=body.raw,
        system=body.system or None,
        images=images(body.images, "images"),
        num_ctx=num_ctx(body.options),
        sampling_defaults=OLLAMA_SAMPLING,
        keep_alive_s=keep_alive(body.keep_alive),
    )


def embed_texts(inp: str | list[str]) -> tuple[str, ...]:
    texts = ([inp] if inp else []) if isinstance(inp, str) else inp
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
    return tuple(texts)


def embed_request(body: ol.EmbedRequest) -> EmbedRequest:
    return EmbedRequest(
        model_name(body.model),
        embed_texts(body.input),
        body.dimensions,
        body.truncate,
        keep_alive_s=keep_alive(body.keep_alive),
    )


def embeddings_request(body: ol.EmbeddingsRequest) -> EmbedRequest:
    texts = (body.prompt,) if body.prompt else ()
    return EmbedRequest(
        model_name(body.model), texts, truncate=True, keep_alive_s=keep_alive(body.keep_alive)
    )


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def keep_alive(value: str | float | None) -> float | None:
    """Ollama's ``keep_alive``: seconds as a number, or a Go duration ("5m", "1h30m"); negative is forever."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    negative = text.startswith("-")
    parts = _DURATION.findall(text.lstrip("-+"))
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-+"):
        raise InvalidRequest(
            f"keep_alive {value!r} is not a duration such as 5m, 1h or 300", param="keep_alive"
        )
    seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    return -seconds if negative else seconds


def is_load_only(body: ol.ChatRequest | ol.GenerateRequest) -> bool:
    """An empty chat or prompt only loads the model in Ollama: no generation, ``done_reason`` load."""
    if isinstance(body, ol.ChatRequest):
        return not body.messages
    return not body.prompt
