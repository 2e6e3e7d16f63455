"""A replica that dies mid-stream: its client sees the stream end with an error, never a hang.

Straight to the replica (or through a load balancer, which can only close the connection too),
the official SDKs raise as soon as the connection drops: the stream has no end event. Behind a
Hearth that has the dead one as its upstream, the client gets its family's own error event: an
OpenAI error chunk and ``[DONE]``, an Anthropic ``error`` event; the row says what was streamed.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.helpers.fake_server import MODELS
from tests.helpers.live import LiveServer

ASK = [{"role": "user", "content": "Tell me a long story."}]


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "replica", "--no-auth", env={"HEARTH_MODELS": MODELS}).start()
    yield server
    server.stop(signal.SIGKILL)


def kill_after_first_chunk(server: LiveServer, seen: threading.Event) -> threading.Thread:
    def kill() -> None:
        seen.wait(30)
        server.stop(signal.SIGKILL)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_the_sdk_raises_at_once_when_the_replica_dies(replica: LiveServer) -> None:
    client = openai.OpenAI(base_url=replica.url + "/v1", api_key="-", max_retries=0, timeout=30)
    seen = threading.Event()
    killer = kill_after_first_chunk(replica, seen)
    pieces = []
    began = time.monotonic()
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in client.chat.completions.create(
            model="slow-chat", messages=ASK, max_tokens=200, stream=True
        ):  # type: ignore[arg-type]
            pieces.append(chunk)
            seen.set()
    killer.join()
    assert pieces and time.monotonic() - began < 20  # a prompt error, not the 200-token stream's end


@pytest.fixture
def front(tmp_path: Path, replica: LiveServer) -> Iterator[LiveServer]:
    upstream = {"id": "remote", "kind": "chat", "backend": "openai", "endpoints": [replica.url + "/v1"],
                "upstream_model": "slow-chat", "health_check_s": 0, "chunk_timeout_s": 10}  # fmt: skip
    server = LiveServer(
        tmp_path / "front", "--no-auth", env={"HEARTH_MODELS": json.dumps([upstream])}
    ).start()
    yield server
    server.stop()


def test_behind_a_hearth_the_openai_client_gets_an_error_chunk(
    front: LiveServer, replica: LiveServer
) -> None:
    seen = threading.Event()
    killer = kill_after_first_chunk(replica, seen)
    body = {"model": "remote", "messages": ASK, "max_tokens": 200, "stream": True}
    with httpx.stream("POST", front.url + "/v1/chat/completions", json=body, timeout=30) as reply:
        events = []
        for line in reply.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                seen.set()
    killer.join()
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and "upstream" in error["message"], error
    assert len(events) > 3  # some of the answer came first


def test_behind_a_hearth_the_anthropic_sdk_gets_an_error_event(
    front: LiveServer, replica: LiveServer
) -> None:
    client = anthropic.Anthropic(base_url=front.url, api_key="-", max_retries=0)
    seen = threading.Event()
    killer = kill_after_first_chunk(replica, seen)
    text = []
    streaming = client.messages.stream(model="remote", max_tokens=200, messages=ASK)  # type: ignore[arg-type]
    with pytest.raises(anthropic.APIStatusError) as failed, streaming as stream:
        for piece in stream.text_stream:
            text.append(piece)
            seen.set()
    killer.join()
    assert text and "upstream" in str(failed.value)
