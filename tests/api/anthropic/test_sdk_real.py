"""The official ``anthropic`` SDK against a live ``hearth serve`` on the real default models."""

from __future__ import annotations

import time

import anthropic
import pytest

from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

MODEL = "gemma-3-270m"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}  # sampling goes in the body: this SDK release has no argument for it


@pytest.fixture(scope="module")
def sdk(real_server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=real_server.url, api_key="not-needed-with-no-auth", max_retries=0)


def _text(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, anthropic.types.TextBlock))


def test_create_and_count_tokens(sdk: anthropic.Anthropic) -> None:
    system = "You answer in one short sentence."
    reply = sdk.messages.create(model=MODEL, system=system, messages=FRANCE, max_tokens=16, extra_body=GREEDY)
    assert "Paris" in _text(reply)
    assert reply.stop_reason in {"end_turn", "max_tokens"} and reply.stop_sequence is None
    usage = reply.usage
    assert 0 < usage.output_tokens <= 16
    counted = sdk.messages.count_tokens(model=MODEL, system=system, messages=FRANCE).input_tokens
    # input_tokens leaves out what the prompt cache served; together they are the whole prompt.
    assert counted > 10
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) == counted


def test_stream_helpers(sdk: anthropic.Anthropic) -> None:
    count = [{"role": "user", "content": "Count from one to five."}]
    with sdk.messages.stream(model=MODEL, messages=count, max_tokens=12, extra_body=GREEDY) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 3  # streamed token by token, not in one piece
    assert "".join(pieces) == _text(final) and _text(final).strip()
    assert final.stop_reason in {"end_turn", "max_tokens"}
    assert 0 < final.usage.output_tokens <= 12 and final.usage.input_tokens > 0


def test_stop_sequence(sdk: anthropic.Anthropic) -> None:
    prompt = [{"role": "user", "content": "Write one sentence about the sea."}]
    free = _text(sdk.messages.create(model=MODEL, messages=prompt, max_tokens=24, extra_body=GREEDY))
    words = free.split()
    assert len(words) >= 4, free
    stop = words[len(words) // 2]
    with sdk.messages.stream(
        model=MODEL, messages=prompt, max_tokens=24, stop_sequences=[stop], extra_body=GREEDY
    ) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", stop)
    assert stop not in _text(final) and free.startswith(_text(final))


def test_errors(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.messages.create(model="claude-3-5-haiku-latest", messages=FRANCE, max_tokens=8)
    assert missing.value.type == "not_found_error"
    # Streamed: the SDK refuses a non-streaming request with so large a max_tokens itself.
    huge = sdk.messages.stream(model=MODEL, messages=FRANCE, max_tokens=1_000_000)
    with pytest.raises(anthropic.BadRequestError) as too_long, huge as stream:
        stream.get_final_message()
    assert too_long.value.type == "invalid_request_error" and "context" in str(too_long.value.api_message)


def test_cache_control_breakpoints_report_true_cache_writes_and_reads(sdk: anthropic.Anthropic) -> None:
    """A ``cache_control`` breakpoint on the system prompt: the first request writes the prefix
    up to it (``cache_creation_input_tokens``, split by ttl), the next one with another question
    reads it (``cache_read_input_tokens``), and the three counts always sum to the prompt."""
    rules = " ".join(f"Rule {i}: answer questions about topic {i} in one short sentence." for i in range(30))
    system: list[anthropic.types.TextBlockParam] = [
        {"type": "text", "text": f"Session {time.time_ns()}. You are a helpful assistant."},
        {"type": "text", "text": rules, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    questions = ["What is the capital of France?", "What is the capital of Italy?"]
    usages = []
    for question in questions:
        messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": question}]
        with sdk.messages.stream(
            model="smollm2", system=system, messages=messages, max_tokens=8, extra_body=GREEDY
        ) as stream:
            final = stream.get_final_message()
        counted = sdk.messages.count_tokens(model="smollm2", system=system, messages=messages).input_tokens
        usage = final.usage
        assert (
            usage.input_tokens
            + (usage.cache_creation_input_tokens or 0)
            + (usage.cache_read_input_tokens or 0)
            == counted
        )
        usages.append(usage)
    first, second = usages
    assert (first.cache_read_input_tokens or 0) < 10, "at most a chat template's first tokens"
    assert (first.cache_creation_input_tokens or 0) > 300, "the system prompt up to the breakpoint"
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_1h_input_tokens == first.cache_creation_input_tokens
    assert first.cache_creation.ephemeral_5m_input_tokens == 0
    assert (second.cache_read_input_tokens or 0) >= (first.cache_creation_input_tokens or 0)
    assert second.cache_creation_input_tokens == 0, "nothing new before the breakpoint"
    assert second.input_tokens < 30, "only the new question was computed"
