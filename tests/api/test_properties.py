"""Property tests (Hypothesis) of every family's request mapper and stream encoder.

Mappers: any conversation a client can send maps to the neutral request with every message, in
order, its role and text intact, and the sampling fields carried over; what a mapper refuses it
refuses with a HearthError (a 4xx in the family's shape), never another exception.
Encoders: any payload, whatever its text holds (newlines, ``data:``, ``\\n\\n``, any Unicode), is
one SSE event or one NDJSON line that decodes back to itself.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hearth.api.anthropic import mapper as anthropic_mapper
from hearth.api.anthropic import protocol as an
from hearth.api.oip import mapper as oip_mapper
from hearth.api.ollama import mapper as ollama_mapper
from hearth.api.ollama import protocol as ol
from hearth.api.openai import mapper as openai_mapper
from hearth.api.openai import protocol as oa
from hearth.api.sse import event_frame, json_frame, ndjson_line
from hearth.errors import HearthError
from hearth.inference.types import ChatRequest

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
texts = st.text(min_size=1, max_size=60)  # any Unicode: newlines, quotes, surrogates excluded
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def turns(first: str, roles: tuple[str, ...]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """A conversation that starts with ``first`` and then alternates the given roles."""
    return st.lists(texts, min_size=1, max_size=6).map(
        lambda contents: [
            {"role": first if i == 0 else roles[i % len(roles)], "content": c} for i, c in enumerate(contents)
        ]
    )


sampling = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(-1, 3),
        "top_p": st.floats(-0.5, 1.5),
        "max_tokens": st.integers(-5, 5000),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "stop": st.lists(texts, max_size=5),
    },
)


def mapped(parse: Any, map_: Any, body: dict[str, Any]) -> ChatRequest | None:
    """The neutral request, or None where the model or the mapper refused the body as a 4xx."""
    try:
        request = parse(body)
    except ValidationError:
        return None  # FastAPI answers 400/422 in the family's shape
    try:
        neutral = map_(request)
        event("mapped")
        return neutral  # type: ignore[no-any-return]
    except HearthError as refused:
        assert 400 <= refused.status_code < 500, refused
        return None


def same_turns(request: ChatRequest, sent: list[dict[str, Any]], system: str | None = None) -> None:
    got = [(m.role, m.text) for m in request.messages]
    expected = ([("system", system)] if system is not None else []) + [
        (t["role"], t["content"]) for t in sent
    ]
    assert got == expected


@SETTINGS
@given(conversation=turns("user", ("user", "assistant")), system=st.none() | texts, extra=sampling)
def test_openai_chat_keeps_every_turn(
    conversation: list[dict[str, Any]], system: str | None, extra: dict[str, Any]
) -> None:
    sent = ([{"role": "system", "content": system}] if system is not None else []) + conversation
    request = mapped(oa.ChatCompletionRequest.model_validate, openai_mapper.chat_request,
                     {"model": "m", "messages": sent, **extra})  # fmt: skip
    if request is None:
        return
    same_turns(request, sent)
    if "max_tokens" in extra:
        assert request.sampling.max_tokens == extra["max_tokens"]
    if "stop" in extra:
        assert tuple(request.sampling.stop or ()) == tuple(extra["stop"])


@SETTINGS
@given(conversation=turns("user", ("user", "assistant")), system=st.none() | texts,
       max_tokens=st.integers(-5, 5000), extra=sampling)  # fmt: skip
def test_anthropic_messages_keep_every_turn(
    conversation: list[dict[str, Any]], system: str | None, max_tokens: int, extra: dict[str, Any]
) -> None:
    extra = {k: v for k, v in extra.items() if k in ("temperature", "top_p")}
    body: dict[str, Any] = {"model": "m", "messages": conversation, "max_tokens": max_tokens, **extra}
    if system is not None:
        body["system"] = system
    request = mapped(an.MessagesRequest.model_validate, anthropic_mapper.chat_request, body)
    if request is None:
        return
    same_turns(request, conversation, system)
    assert request.sampling.max_tokens == max_tokens


@SETTINGS
@given(conversation=turns("user", ("user", "assistant")), system=st.none() | texts,
       num_predict=st.none() | st.integers(-2, 5000))  # fmt: skip
def test_ollama_chat_keeps_every_turn(
    conversation: list[dict[str, Any]], system: str | None, num_predict: int | None
) -> None:
    sent = ([{"role": "system", "content": system}] if system is not None else []) + conversation
    body: dict[str, Any] = {"model": "m", "messages": sent}
    if num_predict is not None:
        body["options"] = {"num_predict": num_predict}
    request = mapped(ol.ChatRequest.model_validate, ollama_mapper.chat_request, body)
    if request is None:
        return
    same_turns(request, sent)


@SETTINGS
@given(body=json_values)
def test_any_json_body_is_mapped_or_refused_as_a_4xx(body: Any) -> None:
    for parse, map_ in (
        (oa.ChatCompletionRequest.model_validate, openai_mapper.chat_request),
        (an.MessagesRequest.model_validate, anthropic_mapper.chat_request),
        (ol.ChatRequest.model_validate, ollama_mapper.chat_request),
    ):
        mapped(parse, map_, body if not isinstance(body, dict) else {"model": "m", **body})


@pytest.mark.parametrize("encode", ["sse", "event", "ndjson"])
@SETTINGS
@given(payload=json_values)
def test_every_stream_event_decodes_to_what_was_sent(encode: str, payload: Any) -> None:
    if encode == "ndjson":
        line = ndjson_line(payload)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == payload
        return
    raw = json_frame(payload) if encode == "sse" else event_frame("message_delta", payload)
    assert raw.endswith(b"\n\n") and raw.count(b"\n\n") == 1  # one event, never split
    lines = raw.decode().split("\n")[:-2]
    if encode == "event":
        assert lines[0] == "event: message_delta"
        lines = lines[1:]
    (data,) = lines
    assert data.startswith("data: ") and json.loads(data[6:]) == payload


@SETTINGS
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
       header=st.none() | st.text(alphabet="0123456789-x", max_size=5))  # fmt: skip
def test_oip_infer_bodies_are_read_or_refused_as_a_4xx(body: bytes, header: str | None) -> None:
    try:
        oip_mapper.read(body, header)
    except HearthError as refused:
        assert 400 <= refused.status_code < 500, refused
