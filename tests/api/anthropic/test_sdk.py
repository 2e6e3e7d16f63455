"""The official ``anthropic`` SDK against a live ``hearth serve`` on fake engines, with keys."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.helpers.live import LiveServer

ADMIN = "admin-secret-anthropic-sdk"
MODELS = json.dumps(
    [
        {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-"},
        # One slot and one queue place, 50 ms a token: two long requests fill it.
        {
            "id": "tiny-queue",
            "kind": "chat",
            "backend": "fake",
            "source": "-",
            "slots": 1,
            "max_queue": 1,
            "options": {"token_delay_s": 0.05},
        },
        {"id": "fake-embed", "kind": "embedding", "backend": "fake", "source": "-"},
    ]
)
HI = [{"role": "user", "content": "hi"}]
MAX_BODY = 256 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("anthropic-sdk")
    with LiveServer(
        root / "data",
        env={"HEARTH_MODELS": MODELS, "HEARTH_ADMIN_KEY": ADMIN, "HEARTH_MAX_BODY_BYTES": str(MAX_BODY)},
    ) as live:
        yield live


def sdk(server: LiveServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> anthropic.Anthropic:
    return sdk(server, server.create_key(ADMIN, "sdk"))


def test_create(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="fake-chat", max_tokens=6, messages=HI, system="be brief")
    assert message.type == "message" and message.role == "assistant" and message.model == "fake-chat"
    assert message.id.startswith("msg_")
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock) and len(block.text.split()) == 6
    assert (message.stop_reason, message.stop_sequence) == ("max_tokens", None)
    assert message.usage.output_tokens == 6 and message.usage.input_tokens > 0
    assert message._request_id is not None and message._request_id.startswith("req_")


def test_stop_sequence(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model="fake-chat", max_tokens=6, messages=HI)
    words = first.content[0].text.split()  # type: ignore[union-attr]
    stopped = client.messages.create(model="fake-chat", max_tokens=6, messages=HI, stop_sequences=[words[3]])
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", words[3])
    assert stopped.content[0].text.split() == words[:3]  # type: ignore[union-attr]


def test_stream_helpers(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model="fake-chat", max_tokens=8, messages=HI)
    with client.messages.stream(model="fake-chat", max_tokens=8, messages=HI) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 8
    assert "".join(pieces) == final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert (final.stop_reason, final.stop_sequence) == ("max_tokens", None)
    assert final.usage.output_tokens == 8 and final.usage.input_tokens == whole.usage.input_tokens
    # Raw events: Anthropic's sequence, typed by the SDK.
    events = list(client.messages.create(model="fake-chat", max_tokens=2, messages=HI, stream=True))
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the SDK drops the ping


def test_stream_stop_sequence(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model="fake-chat", max_tokens=6, messages=HI)
    stop = first.content[0].text.split()[2]  # type: ignore[union-attr]
    with client.messages.stream(
        model="fake-chat", max_tokens=6, messages=HI, stop_sequences=[stop]
    ) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", stop)


def test_sampling_through_extra_body(client: anthropic.Anthropic) -> None:
    # This SDK release no longer takes temperature/top_p/top_k as arguments; the API still does.
    message = client.messages.create(
        model="fake-chat",
        max_tokens=3,
        messages=HI,
        metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 20},
    )
    assert message.usage.output_tokens == 3
    with pytest.raises(anthropic.BadRequestError) as hot:
        client.messages.create(model="fake-chat", max_tokens=3, messages=HI, extra_body={"temperature": 1.5})
    assert hot.value.type == "invalid_request_error" and "temperature" in str(hot.value.api_message)


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="fake-chat", messages=HI, system="be brief")
    message = client.messages.create(model="fake-chat", max_tokens=1, messages=HI, system="be brief")
    assert counted.input_tokens == message.usage.input_tokens > 0
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-sonnet-4-5", messages=HI)


def test_errors_are_the_sdks_exception_classes(server: LiveServer, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError) as bad_key:
        sdk(server, "hk-wrong").messages.create(model="fake-chat", max_tokens=3, messages=HI)
    assert bad_key.value.type == "authentication_error" and bad_key.value.request_id
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=3, messages=HI)
    assert missing.value.type == "not_found_error" and "claude-sonnet-4-5" in str(missing.value.api_message)
    with pytest.raises(anthropic.BadRequestError) as too_long:
        client.messages.create(model="fake-chat", max_tokens=5000, messages=HI)
    assert too_long.value.type == "invalid_request_error" and too_long.value.status_code == 400
    scoped = sdk(server, server.create_key(ADMIN, "embed-only", models=["fake-embed"]))
    with pytest.raises(anthropic.PermissionDeniedError):
        scoped.messages.create(model="fake-chat", max_tokens=3, messages=HI)
    limited = sdk(server, server.create_key(ADMIN, "one-a-minute", rpm=1))
    limited.messages.create(model="fake-chat", max_tokens=1, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as refused:
        limited.messages.create(model="fake-chat", max_tokens=1, messages=HI)
    assert refused.value.type == "rate_limit_error"
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert refused.value.response.headers["anthropic-ratelimit-requests-limit"] == "1"
    broke = sdk(server, server.create_key(ADMIN, "no-budget", monthly_tokens=5))
    with pytest.raises(anthropic.RateLimitError):
        broke.messages.create(model="fake-chat", max_tokens=10, messages=HI)


def test_body_too_large_is_the_sdks_413(server: LiveServer, client: anthropic.Anthropic) -> None:
    huge = [{"role": "user", "content": "x" * (2 * MAX_BODY)}]
    with pytest.raises(anthropic.APIStatusError) as big:
        client.messages.create(model="fake-chat", max_tokens=1, messages=huge)
    assert big.value.status_code == 413 and big.value.type == "request_too_large"
    assert big.value.request_id


def test_mid_stream_failure_raises_from_the_stream(client: anthropic.Anthropic) -> None:
    failing = [{"role": "user", "content": "FAIL_MIDSTREAM"}]
    with client.messages.stream(model="fake-chat", max_tokens=10, messages=failing) as stream:
        pieces: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as failed:
            pieces.extend(stream.text_stream)
    assert len(pieces) == 2
    assert failed.value.type == "api_error" and "mid-stream" in str(failed.value.api_message)


def test_full_queue_is_the_sdks_overloaded_error(server: LiveServer, client: anthropic.Anthropic) -> None:
    key = server.create_key(ADMIN, "queue")
    body = {"model": "tiny-queue", "max_tokens": 30, "messages": HI}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}

    def hold() -> None:
        httpx.post(server.url + "/v1/messages", json=body, headers=headers, timeout=30)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
        time.sleep(0.5)  # the first takes the slot, the second the queue place
    try:
        with pytest.raises(anthropic.OverloadedError) as busy:
            sdk(server, key).messages.create(model="tiny-queue", max_tokens=1, messages=HI)
        assert busy.value.status_code == 529 and busy.value.type == "overloaded_error"
    finally:
        for thread in holders:
            thread.join()


def test_the_server_logged_no_tracebacks(server: LiveServer) -> None:
    assert "Traceback" not in server.logs()
