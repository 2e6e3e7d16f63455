"""The official ``ollama`` Python client against a live ``hearth serve`` on fake engines, with keys."""

from __future__ import annotations

import asyncio

import httpx
import ollama
import pytest

from tests.helpers.fake_server import FakeHearth

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def client(hearth: FakeHearth, api_key: str) -> ollama.Client:
    return ollama.Client(host=hearth.url, headers={"Authorization": f"Bearer {api_key}"})


def test_chat(client: ollama.Client) -> None:
    reply = client.chat(
        model="fake-chat", messages=MESSAGES, options={"num_predict": 4, "seed": 1}, stream=False
    )
    assert reply.model == "fake-chat" and reply.done is True and reply.done_reason == "length"
    assert reply.message.role == "assistant" and len((reply.message.content or "").split()) == 4
    assert reply.eval_count == 4 and (reply.prompt_eval_count or 0) > 0
    assert (reply.total_duration or 0) > 0 and reply.load_duration == 0
    assert reply.created_at is not None and reply.created_at.endswith("Z")


def test_chat_stream(client: ollama.Client) -> None:
    parts = list(
        client.chat(model="fake-chat:latest", messages=MESSAGES, options={"num_predict": 5}, stream=True)
    )
    assert len(parts) == 6  # five pieces of text, then the done object
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    text = "".join(p.message.content or "" for p in parts)
    assert len(text.split()) == 5
    assert parts[-1].done_reason == "length" and parts[-1].eval_count == 5
    assert {p.model for p in parts} == {"fake-chat:latest"}


def test_generate_stream_and_not(client: ollama.Client) -> None:
    whole = client.generate(model="fake-chat", prompt="once upon", options={"num_predict": 3}, stream=False)
    assert whole.done and len(whole.response.split()) == 3 and whole.eval_count == 3
    pieces = list(
        client.generate(model="fake-chat", prompt="once upon", options={"num_predict": 3}, stream=True)
    )
    assert "".join(p.response for p in pieces) == whole.response  # same prompt, same fake words
    assert pieces[-1].done and pieces[-1].done_reason == "length"
    raw = client.generate(model="fake-chat", prompt="once upon", raw=True, options={"num_predict": 1})
    system = client.generate(
        model="fake-chat", prompt="once upon", system="be brief", options={"num_predict": 1}
    )
    assert (raw.prompt_eval_count or 0) < (whole.prompt_eval_count or 0) < (system.prompt_eval_count or 0)
    loaded = client.generate(model="fake-chat", prompt="")
    assert loaded.done and loaded.done_reason == "load"


def test_embed_and_embeddings(client: ollama.Client) -> None:
    reply = client.embed(model="fake-embed", input=["a small cat", "a red car"])
    assert len(reply.embeddings) == 2 and all(len(v) == 8 for v in reply.embeddings)
    assert reply.prompt_eval_count == 10  # the fake counts words plus two
    single = client.embed(model="fake-embed:latest", input="a small cat")
    assert list(single.embeddings[0]) == list(reply.embeddings[0])
    legacy = client.embeddings(model="fake-embed", prompt="a small cat")
    assert list(legacy.embedding) == pytest.approx(list(reply.embeddings[0]))


def test_list_show_ps(client: ollama.Client) -> None:
    listed = client.list().models
    assert [m.model for m in listed] == ["fake-chat:latest", "slow-chat:latest", "fake-embed:latest"]
    assert all(m.digest and m.details and m.modified_at for m in listed)
    shown = client.show("fake-chat:latest")
    assert shown.capabilities == ["completion", "tools"]
    assert shown.modelinfo is not None and shown.modelinfo["fake.context_length"] == 2048
    assert shown.details is not None and shown.details.family == "fake"
    assert "temperature" in (shown.parameters or "")
    assert client.show("fake-embed").capabilities == ["embedding"]
    running = client.ps().models
    assert {m.model for m in running} == {"fake-chat:latest", "slow-chat:latest", "fake-embed:latest"}
    assert all(m.expires_at is not None and m.size_vram == 0 for m in running)


def test_version_without_a_key(hearth: FakeHearth) -> None:
    reply = httpx.get(hearth.url + "/api/version")
    assert reply.status_code == 200 and reply.json() == {"version": "0.1.0"}


def test_errors_raise_response_error_with_status(hearth: FakeHearth, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="nope", messages=MESSAGES, stream=False)
    assert missing.value.status_code == 404
    assert missing.value.error.startswith("model 'nope' not found; the models you may use: fake-chat, ")
    with pytest.raises(ollama.ResponseError) as streamed_missing:
        list(client.chat(model="nope:latest", messages=MESSAGES, stream=True))
    assert streamed_missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as too_long:
        client.generate(model="fake-chat", prompt="word " * 3000, stream=False)
    assert too_long.value.status_code == 400 and "context" in too_long.value.error
    with pytest.raises(ollama.ResponseError) as no_key:
        ollama.Client(host=hearth.url).list()
    assert no_key.value.status_code == 401 and "API key" in no_key.value.error
    with pytest.raises(ollama.ResponseError) as wrong_kind:
        client.embed(model="fake-chat", input="x")
    assert wrong_kind.value.status_code == 400


def test_mid_stream_failure_raises_from_the_iterator(client: ollama.Client) -> None:
    stream = client.generate(
        model="fake-chat", prompt="go FAIL_MIDSTREAM", options={"num_predict": 9}, stream=True
    )
    received = []
    with pytest.raises(ollama.ResponseError) as failed:
        for part in stream:
            received.append(part.response)
    assert received and failed.value.error == "the fake engine failed mid-stream, as asked"


def test_quota_is_a_429(hearth: FakeHearth) -> None:
    key = hearth.create_key("ollama-tiny", monthly_tokens=30)
    tiny = ollama.Client(host=hearth.url, headers={"Authorization": f"Bearer {key}"})
    tiny.chat(model="fake-chat", messages=MESSAGES, options={"num_predict": 3}, stream=False)
    with pytest.raises(ollama.ResponseError) as over:
        tiny.chat(model="fake-chat", messages=MESSAGES, options={"num_predict": 25}, stream=False)
    assert over.value.status_code == 429 and "monthly budget" in over.value.error


def test_async_client_streams(hearth: FakeHearth, api_key: str) -> None:
    async def run() -> list[str]:
        client = ollama.AsyncClient(host=hearth.url, headers={"Authorization": f"Bearer {api_key}"})
        stream = await client.chat(
            model="slow-chat", messages=MESSAGES, options={"num_predict": 3}, stream=True
        )
        return [part.message.content or "" async for part in stream]

    pieces = asyncio.run(run())
    assert len(pieces) == 4 and pieces[-1] == ""
