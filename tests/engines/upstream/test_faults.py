"""An upstream that misbehaves on purpose: refuses, hangs, fails, rate-limits, cuts or stalls its
stream, sends malformed JSON or no usage. Every answered request has exactly one usage row, with
the upstream's counts where it gave them; a failure before the first byte is retried once on
another endpoint, and never after it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers import upstream as up
from tests.helpers.apps import fake_models, fake_settings, wait_ready
from tests.helpers.closing_upstream import ClosingUpstream
from tests.helpers.keys import ADMIN, admin_headers, bearer
from tests.helpers.ledger import rows
from tests.helpers.upstream import FakeUpstream, free_port
from tests.helpers.wire import sse_events

MESSAGES = [{"role": "user", "content": "Say hello."}]
CHAT = {"model": "up", "messages": MESSAGES, "max_tokens": 8}
TEXT = "".join(up.WORDS)


def app_with(tmp_path: Path, endpoints: list[str], **spec: Any) -> TestClient:
    model = {"id": "up", "kind": "chat", "backend": "openai", "endpoints": endpoints, "upstream_model": "up-chat",
             "health_check_s": 0, "first_byte_timeout_s": 1.0, "chunk_timeout_s": 1.0, "answer_timeout_s": 1.0,
             **spec}  # fmt: skip
    models = [*[m.model_dump() for m in fake_models()], model]
    return TestClient(build_app(fake_settings(tmp_path, models=models, no_auth=False, admin_key=ADMIN)))


@pytest.fixture
def first() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def second() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def started(client: TestClient) -> TestClient:
    wait_ready(client)
    secret = client.post("/admin/keys", json={"name": "faults"}, headers=admin_headers()).json()["secret"]
    client.headers.update(bearer(secret))
    return client


def chat_rows(client: TestClient) -> list[dict[str, Any]]:
    return [r for r in rows(client) if r["route"] == "POST /v1/chat/completions"]


def test_a_refused_connection_is_retried_on_the_other_endpoint(tmp_path: Path, second: FakeUpstream) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with app_with(tmp_path, [dead, second.url]) as client:
        started(client)
        for _ in range(4):
            reply = client.post("/v1/chat/completions", json=CHAT)
            assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == TEXT
        assert len(second.bodies("/v1/chat/completions")) == 4
        assert [(r["status_code"], r["completion_tokens"]) for r in chat_rows(client)] == [(200, 4)] * 4
        endpoints = client.get("/admin/models", headers=admin_headers()).json()["data"][-1]["endpoints"]
        states = {e["endpoint"]: e["breaker"] for e in endpoints}
        # Three refusals in a row opened the dead endpoint's breaker: the fourth went straight on.
        assert states[dead] == "open" and states[second.url] == "closed"
        assert endpoints[0]["errors"] == 3


@pytest.mark.parametrize("mode", ["500", "429", "hang"])
def test_a_failure_before_the_first_byte_moves_to_another_endpoint(
    tmp_path: Path, first: FakeUpstream, second: FakeUpstream, mode: str
) -> None:
    first.mode = mode  # type: ignore[assignment]
    with app_with(tmp_path, [first.url, second.url]) as client:
        started(client)
        reply = client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200, reply.text
        assert (
            len(first.bodies("/v1/chat/completions")) == 1 and len(second.bodies("/v1/chat/completions")) == 1
        )
        assert [r["status_code"] for r in chat_rows(client)] == [200]


@pytest.mark.parametrize(
    ("mode", "status", "says"),
    [("500", 502, "the GPU fell over"), ("429", 429, "slow down"), ("hang", 503, "did not answer")],
)
def test_with_every_endpoint_failing_the_caller_gets_a_clear_error(
    tmp_path: Path, first: FakeUpstream, mode: str, status: int, says: str
) -> None:
    first.mode = mode  # type: ignore[assignment]
    with app_with(tmp_path, [first.url]) as client:
        started(client)
        begun = time.monotonic()
        reply = client.post("/v1/chat/completions", json=CHAT)
        assert time.monotonic() - begun < 10  # the first-byte timeout, not the upstream's hang
        assert reply.status_code == status and says in reply.json()["error"]["message"], reply.text
        if status == 429:
            assert reply.headers["retry-after"] == "3"
        (row,) = chat_rows(client)
        assert row["status_code"] == status and row["completion_tokens"] == 0


@pytest.mark.parametrize("mode", ["cut", "stall", "malformed", "error_chunk"])
def test_a_stream_that_breaks_ends_with_the_familys_error_and_is_never_retried(
    tmp_path: Path, first: FakeUpstream, second: FakeUpstream, mode: str
) -> None:
    first.mode = second.mode = mode  # type: ignore[assignment]
    with app_with(tmp_path, [first.url, second.url]) as client:
        started(client)
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as reply:
            events = sse_events(reply.read().decode())
        assert reply.status_code == 200 and events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["type"] == "server_error" and error["code"] == "upstream_failure", error
        text = "".join(
            json.loads(e)["choices"][0]["delta"].get("content") or ""
            for e in events[:-2]
            if json.loads(e).get("choices")
        )
        assert text == "".join(up.WORDS[:2])
        calls = len(first.bodies("/v1/chat/completions")) + len(second.bodies("/v1/chat/completions"))
        assert calls == 1  # after the first byte, no second try
        (row,) = chat_rows(client)
        assert row["status_code"] == 502 and row["error_type"] == "upstream_failure"
        assert row["completion_tokens"] == 2  # what it had streamed


def test_a_stream_without_usage_is_counted_from_its_chunks(tmp_path: Path, first: FakeUpstream) -> None:
    first.mode = "no_usage"
    with app_with(tmp_path, [first.url]) as client:
        started(client)
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            chunks = [json.loads(e) for e in sse_events(reply.read().decode())[:-1]]
        assert chunks[-1]["usage"]["completion_tokens"] == up.COMPLETION_TOKENS
        (row,) = chat_rows(client)
        assert row["completion_tokens"] == up.COMPLETION_TOKENS and row["prompt_tokens"] > 0


def test_a_whole_answer_without_usage_is_counted_from_its_text(tmp_path: Path, first: FakeUpstream) -> None:
    first.mode = "no_usage"
    with app_with(tmp_path, [first.url]) as client:
        started(client)
        reply = client.post("/v1/chat/completions", json=CHAT).json()
        estimate = -(-len(TEXT) // 3)  # Hearth's cautious estimate, 3 characters a token
        assert reply["usage"]["completion_tokens"] == estimate
        (row,) = chat_rows(client)
        assert row["completion_tokens"] == estimate and row["prompt_tokens"] > 0


def test_a_whole_answer_waits_answer_timeout_not_first_byte(tmp_path: Path, first: FakeUpstream) -> None:
    """An unstreamed answer's first byte is its last: it gets answer_timeout_s to arrive whole."""
    first.mode, first.hang_s = "hang", 1.5
    with app_with(tmp_path, [first.url], answer_timeout_s=10.0) as client:
        started(client)
        reply = client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == TEXT
        # Streamed, the same wait is past first_byte_timeout_s (1 s): a clean 503.
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as streamed:
            assert streamed.status_code == 503
            assert "did not answer" in json.loads(streamed.read())["error"]["message"]


def test_the_key_comes_from_the_environment_and_never_shows(
    tmp_path: Path, first: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UP_KEY", "sk-very-secret")
    first.mode = "500"
    with app_with(tmp_path, [first.url], api_key_env="UP_KEY") as client:
        started(client)
        reply = client.post("/v1/chat/completions", json=CHAT)
        assert first.requests[-1][2]["authorization"] == "Bearer sk-very-secret"
        assert "sk-very-secret" not in reply.text
        listed = client.get("/admin/models", headers=admin_headers()).text
        assert "sk-very-secret" not in listed and "sk-very-secret" not in client.get("/metrics").text


def test_a_key_file_is_read_and_a_missing_variable_fails_the_model_with_the_reason(
    tmp_path: Path, first: FakeUpstream
) -> None:
    key_file = tmp_path / "up.key"
    key_file.write_text("sk-from-file\n")
    with app_with(tmp_path, [first.url], api_key_file=str(key_file)) as client:
        started(client)
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert first.requests[-1][2]["authorization"] == "Bearer sk-from-file"
    with app_with(tmp_path / "b", [first.url], api_key_env="NOT_SET_ANYWHERE") as client:
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        reasons = client.get("/ready").json()["reasons"]
        assert any("NOT_SET_ANYWHERE" in r for r in reasons), reasons


def test_an_upstream_key_written_in_the_config_is_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from hearth.config import ModelSpec

    with pytest.raises(ValidationError, match="never written in the config"):
        ModelSpec.model_validate(
            {"id": "x", "kind": "chat", "backend": "openai", "source": "http://h/v1", "api_key": "sk-1"}
        )


def test_requests_go_where_the_servers_say_the_queue_is_shortest(
    tmp_path: Path, first: FakeUpstream, second: FakeUpstream
) -> None:
    first.metrics_text = 'vllm:num_requests_waiting{model_name="up-chat"} 6.0\nvllm:num_requests_running{model_name="up-chat"} 8.0\n'
    second.metrics_text = 'vllm:num_requests_waiting{model_name="up-chat"} 0.0\nvllm:num_requests_running{model_name="up-chat"} 1.0\n'
    with app_with(tmp_path, [first.url, second.url], health_check_s=0.2) as client:
        started(client)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            endpoints = client.get("/admin/models", headers=admin_headers()).json()["data"][-1]["endpoints"]
            if endpoints[0]["server_queue"] == 14.0:
                break
            time.sleep(0.05)
        assert [e["server_queue"] for e in endpoints] == [14.0, 1.0]
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert len(second.bodies("/v1/chat/completions")) == 3 and not first.bodies("/v1/chat/completions")


def test_queue_gauges_are_read_from_every_engine_kind() -> None:
    from hearth.engines.upstream.endpoints import server_queue

    assert server_queue('sglang:num_queue_reqs{a="1"} 2\nsglang:num_running_reqs 3\nother 9\n') == 5.0
    assert server_queue("llamacpp:requests_deferred 1\nllamacpp:requests_processing 2\n") == 3.0
    assert server_queue("# nothing here\nprocess_cpu_seconds_total 4\n") is None


def test_a_kept_alive_connection_closed_as_it_is_reused_is_sent_again(tmp_path: Path) -> None:
    with ClosingUpstream() as server, app_with(tmp_path, [server.url]) as client:
        started(client)
        for _ in range(3):  # each reuses the connection the one before kept alive
            reply = client.post("/v1/chat/completions", json=CHAT)
            assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == TEXT
        assert server.requests.count("/v1/chat/completions") >= 4  # at least one sent again
        assert [(r["status_code"], r["completion_tokens"]) for r in chat_rows(client)] == [(200, 4)] * 3
        (endpoint,) = client.get("/admin/models", headers=admin_headers()).json()["data"][-1]["endpoints"]
        assert endpoint["errors"] == 0 and endpoint["breaker"] == "closed"  # the server did nothing wrong


def test_a_server_that_closes_every_connection_unanswered_gets_a_clear_error(tmp_path: Path) -> None:
    with ClosingUpstream(always=True) as server, app_with(tmp_path, [server.url]) as client:
        started(client)
        reply = client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 503, reply.text
        assert "closed the connection" in reply.json()["error"]["message"]
        assert server.requests.count("/v1/chat/completions") == 3  # the first send and two more, no loop
        (row,) = chat_rows(client)
        assert row["status_code"] == 503
