"""The official ``openai`` SDK against a live ``hearth serve`` on the real default models."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest

from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def sdk(real_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_server.url + "/v1", api_key="not-needed-with-no-auth", max_retries=0)


def test_models(sdk: openai.OpenAI) -> None:
    ids = {m.id for m in sdk.models.list()}
    assert ids == {
        "smollm2-135m-instruct",
        "gemma-3-270m",
        "all-minilm-l6-v2",
        "efficientnet-lite0",
        "whisper-base",
    }
    assert sdk.models.retrieve("gemma-3-270m").id == "gemma-3-270m"


def test_chat(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="gemma-3-270m",
        messages=[
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_tokens=16,
        temperature=0,
    )
    choice = reply.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 10
    assert 0 < reply.usage.completion_tokens <= 16
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_stream_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"] or finish == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 12
    assert len(chunks) > 3  # streamed token by token, not in one piece


def test_completions(sdk: openai.OpenAI) -> None:
    reply = sdk.completions.create(
        model="gemma-3-270m", prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert reply.choices[0].text.strip()
    assert reply.usage is not None and reply.usage.completion_tokens <= 8
    stream = sdk.completions.create(
        model="gemma-3-270m", prompt="One, two, three,", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices).strip()


def test_embeddings(sdk: openai.OpenAI) -> None:
    reply = sdk.embeddings.create(
        model="all-minilm-l6-v2", input=["a small cat", "a little kitten", "a red car"]
    )
    vectors = np.array([d.embedding for d in reply.data])
    assert vectors.shape == (3, 384)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]
    assert reply.usage.prompt_tokens > 0
    # Asked for explicitly, base64 comes back as the raw string: little-endian float32.
    b64 = sdk.embeddings.create(model="all-minilm-l6-v2", input="a small cat", encoding_format="base64")
    raw = b64.data[0].embedding
    assert isinstance(raw, str)
    assert np.allclose(np.frombuffer(base64.b64decode(raw), dtype="<f4"), vectors[0], atol=1e-6)


def test_sdk_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        sdk.chat.completions.create(
            model="gemma-3-270m", messages=[{"role": "user", "content": "hi"}], max_tokens=100_000
        )
    assert too_long.value.code == "context_length_exceeded"


def test_prompt_cache_key_in_chat_and_responses(sdk: openai.OpenAI) -> None:
    """``prompt_cache_key`` is taken by chat and Responses through the SDK's own argument, the
    Response object repeats it, and a conversation sent again under it reads its prefix from
    the cache (``cached_tokens``)."""
    instructions = " ".join(f"Step {i}: check the ledger entry {i} before answering." for i in range(30))
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "system", "content": instructions},
        {"role": "user", "content": "Which step checks entry 7?"},
    ]
    first = sdk.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=4, temperature=0, prompt_cache_key="ledger-agent"
    )
    again = sdk.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=4, temperature=0, prompt_cache_key="ledger-agent"
    )
    assert first.usage is not None and again.usage is not None
    details = again.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    assert details.cached_tokens >= again.usage.prompt_tokens - 2, (
        "all but the last prompt token came from the cache"
    )

    response = sdk.responses.create(
        model="smollm2", instructions=instructions, input="Which step checks entry 7?", max_output_tokens=16,
        temperature=0, prompt_cache_key="ledger-agent",
    )  # fmt: skip
    assert response.prompt_cache_key == "ledger-agent"
    assert sdk.responses.retrieve(response.id).prompt_cache_key == "ledger-agent"
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens > 100
