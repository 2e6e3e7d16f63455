"""The sync and async clients against a live ``hearth serve`` on fake engines, with API keys."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hearth.clients import (
    AsyncHearthClient,
    AuthenticationError,
    BadRequestError,
    ConnectionFailed,
    HearthClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from tests.helpers.fake_server import FakeHearth, serve_directory
from tests.helpers.images import chelsea
from tests.helpers.live import free_port


@pytest.fixture
def client(hearth: FakeHearth, api_key: str) -> Iterator[HearthClient]:
    with HearthClient(hearth.url, api_key) as c:
        yield c


def test_chat_completions_embeddings_models(client: HearthClient) -> None:
    reply = client.chat(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        model="fake-chat",
        max_tokens=4,
        seed=1,
    )
    assert reply.model == "fake-chat" and len(reply.text.split()) == 4
    assert reply.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert client.complete("once upon", model="fake-chat", max_tokens=3).text.count(" ") == 2
    vectors = client.embed(["a", "b", "c"], model="fake-embed").vectors
    assert len(vectors) == 3 and len(vectors[0]) == 8
    models = client.list_models()
    assert [m.id for m in models] == ["fake-chat", "slow-chat", "fake-embed", "fake-vision"]
    assert models[0].kind == "chat" and models[0].ready is True
    card = client.get_model("fake-embed")
    assert card.kind == "embedding" and card.details is not None and card.details["state"] == "ready"


def test_streaming_iterator(client: HearthClient) -> None:
    stream = client.chat_stream("count please", model="fake-chat", max_tokens=6)
    deltas = list(stream)
    assert len(deltas) == 6 and "".join(deltas) == stream.text
    assert stream.finish_reason == "length"
    assert stream.usage is not None and stream.usage.completion_tokens == 6
    completion = client.complete_stream("go", model="fake-chat", max_tokens=3).until_done()
    assert len(completion.text.split()) == 3 and completion.usage is not None


def test_classify_path_bytes_and_url(client: HearthClient) -> None:
    image = chelsea()
    by_path = client.classify(image, top_k=2)
    assert by_path.model == "fake-vision" and len(by_path.predictions) == 2
    assert by_path.predictions[0].confidence > by_path.predictions[1].confidence
    assert (
        client.classify(image.read_bytes(), model="fake-vision", top_k=4).predictions
        == client.classify(image, top_k=4).predictions
    )
    with serve_directory(image.parent) as root:
        by_url = client.classify(f"{root}/chelsea.png", top_k=2)
    assert by_url.predictions == by_path.predictions


def test_usage_and_budget(hearth: FakeHearth) -> None:
    with HearthClient(hearth.url, hearth.create_key("budgeted", monthly_tokens=5000)) as c:
        c.chat("hi", model="fake-chat", max_tokens=2)
        report = c.usage()
    assert report.key is not None and report.key["name"] == "budgeted"
    assert report.budget is not None and report.budget.monthly_tokens == 5000
    assert report.budget.remaining is not None and report.budget.remaining <= 5000


def test_errors_from_a_live_server(hearth: FakeHearth, client: HearthClient) -> None:
    with HearthClient(hearth.url, api_key="") as anonymous, pytest.raises(AuthenticationError) as caught:
        anonymous.list_models()
    assert caught.value.status == 401 and "didn't provide an API key" in caught.value.message
    with HearthClient(hearth.url, "hk-not-a-real-key") as wrong, pytest.raises(AuthenticationError) as caught:
        wrong.chat("hi", model="fake-chat")
    assert caught.value.code == "invalid_api_key"

    scoped = hearth.create_key("chat-only", models=["fake-chat"])
    with HearthClient(hearth.url, scoped) as c, pytest.raises(PermissionDeniedError) as denied:
        c.embed("x", model="fake-embed")
    assert denied.value.status == 403 and denied.value.param == "model"

    with pytest.raises(NotFoundError) as missing:
        client.chat("hi", model="no-such-model")
    assert missing.value.code == "model_not_found"
    with pytest.raises(BadRequestError) as bad:
        client.chat("hi", model="fake-chat", temperature=5)
    assert bad.value.status == 400 and bad.value.param == "temperature"
    with pytest.raises(BadRequestError) as images:
        client.chat(
            [{"role": "user", "content": [{"type": "text", "text": "what?"}, client.image_part(chelsea())]}],
            model="fake-chat",
        )
    assert images.value.code == "unsupported_content" and "does not accept images" in images.value.message


def test_rate_limit_carries_retry_after(hearth: FakeHearth) -> None:
    with HearthClient(hearth.url, hearth.create_key("one-per-minute", rpm=1)) as c:
        c.chat("hi", model="fake-chat", max_tokens=1)
        with pytest.raises(RateLimitError) as caught:
            c.chat("hi", model="fake-chat", max_tokens=1)
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 61


def test_mid_stream_error(client: HearthClient) -> None:
    received: list[str] = []
    with pytest.raises(ServerError) as caught:
        for delta in client.chat_stream("please FAIL_MIDSTREAM", model="fake-chat", max_tokens=10):
            received.append(delta)
    assert len(received) == 2  # the fake engine fails after two tokens
    assert caught.value.code == "engine_error" and "mid-stream" in caught.value.message


def test_connection_refused() -> None:
    port = free_port()
    with HearthClient(f"http://127.0.0.1:{port}/v1") as c, pytest.raises(ConnectionFailed) as caught:
        c.list_models()
    assert caught.value.message.startswith(f"no server is running at http://127.0.0.1:{port}")


async def test_async_client(hearth: FakeHearth, api_key: str) -> None:
    async with AsyncHearthClient(hearth.url + "/v1/", api_key) as c:
        reply, vectors, models = await asyncio.gather(
            c.chat("hi", model="fake-chat", max_tokens=3),
            c.embed("x", model="fake-embed"),
            c.list_models(),
        )
        assert len(reply.text.split()) == 3 and len(vectors.vectors[0]) == 8 and len(models) == 4
        stream = await c.chat_stream("hi", model="slow-chat", max_tokens=3)
        assert len([d async for d in stream]) == 3 and stream.usage is not None
        result = await c.classify(chelsea(), top_k=1)
        assert len(result.predictions) == 1
        with pytest.raises(ServerError):
            async for _ in await c.chat_stream("FAIL_MIDSTREAM", model="fake-chat"):
                pass
        with pytest.raises(NotFoundError):
            await c.get_model("nope")
