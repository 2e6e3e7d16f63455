"""A second Hearth as the upstream, in both dialects, through the official clients of every family.

The upstream is a live ``hearth serve`` on fake engines with keys on; the front is another live
``hearth serve`` whose models are that server's, reached in OpenAI's dialect and in Anthropic's,
with the upstream's key read from an environment variable. Streams included; the answers carry
the upstream's own token counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.helpers.fake_server import FakeHearth
from tests.helpers.live import LiveServer

ASK = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def front(hearth: FakeHearth, api_key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = [
        {"id": "over-openai", "kind": "chat", "backend": "openai", "source": hearth.url + "/v1",
         "upstream_model": "fake-chat", "api_key_env": "UPSTREAM_KEY"},
        {"id": "over-anthropic", "kind": "chat", "backend": "anthropic", "source": hearth.url,
         "upstream_model": "fake-chat", "api_key_env": "UPSTREAM_KEY"},
        {"id": "embed-over-openai", "kind": "embedding", "backend": "openai", "source": hearth.url + "/v1",
         "upstream_model": "fake-embed", "api_key_env": "UPSTREAM_KEY"},
    ]  # fmt: skip
    env = {"HEARTH_MODELS": json.dumps(models), "UPSTREAM_KEY": api_key}
    with LiveServer(tmp_path_factory.mktemp("front") / "data", "--no-auth", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def direct(hearth: FakeHearth, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=hearth.url + "/v1", api_key=api_key, max_retries=0)


@pytest.mark.parametrize("model", ["over-openai", "over-anthropic"])
def test_openai_sdk_whole_and_streamed(front: LiveServer, direct: openai.OpenAI, model: str) -> None:
    sdk = openai.OpenAI(base_url=front.url + "/v1", api_key="-", max_retries=0)
    answer = sdk.chat.completions.create(model=model, messages=ASK, max_tokens=5)  # type: ignore[arg-type]
    reference = direct.chat.completions.create(model="fake-chat", messages=ASK, max_tokens=5)  # type: ignore[arg-type]
    assert answer.model == model and answer.choices[0].message.content == reference.choices[0].message.content
    assert answer.usage is not None and reference.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        reference.usage.prompt_tokens,
        reference.usage.completion_tokens,
    )
    stream = sdk.chat.completions.create(
        model=model, messages=ASK, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )  # type: ignore[arg-type]
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reference.choices[0].message.content
    assert (
        chunks[-1].usage is not None
        and chunks[-1].usage.completion_tokens == reference.usage.completion_tokens
    )


@pytest.mark.parametrize("model", ["over-openai", "over-anthropic"])
def test_anthropic_sdk_streams_and_counts(front: LiveServer, model: str) -> None:
    client = anthropic.Anthropic(base_url=front.url, api_key="-", max_retries=0)
    with client.messages.stream(model=model, max_tokens=5, messages=ASK) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.model == model and final.usage.output_tokens == 5
    assert final.stop_reason == "max_tokens"
    counted = client.messages.count_tokens(model=model, messages=ASK)  # type: ignore[arg-type]
    assert counted.input_tokens > 0


def test_ollama_client_and_embeddings(front: LiveServer, direct: openai.OpenAI) -> None:
    client = ollama.Client(host=front.url)
    reply = client.chat(model="over-openai", messages=ASK, options={"num_predict": 4})
    assert reply.message.content and reply.eval_count == 4
    sdk = openai.OpenAI(base_url=front.url + "/v1", api_key="-", max_retries=0)
    vectors = sdk.embeddings.create(model="embed-over-openai", input=["a cat", "a dog"])
    reference = direct.embeddings.create(model="fake-embed", input=["a cat", "a dog"])
    assert [d.embedding for d in vectors.data] == [d.embedding for d in reference.data]
    assert vectors.usage.prompt_tokens == reference.usage.prompt_tokens


def test_the_front_shows_the_upstream_and_its_endpoint(front: LiveServer, hearth: FakeHearth) -> None:
    card = httpx.get(front.url + "/v1/models/over-openai").json()
    assert (
        card["details"]["backend"] == "openai" and card["details"]["extra"]["upstream_model"] == "fake-chat"
    )
    assert card["details"]["extra"]["endpoints"] == [hearth.url + "/v1"]
