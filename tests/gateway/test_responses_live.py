"""Stored responses across restarts and replicas: real ``hearth serve`` processes on fake engines.

A conversation survives a restart; a background response cut by one ends ``failed`` (at once on
SIGTERM, by the stale-heartbeat sweep after a SIGKILL). Two replicas on one PostgreSQL share
chains, see each other's cancels, and fail the work of a replica that died.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live import LiveServer
from tests.helpers.services import drop_postgres_schema, fresh_postgres_schema_url

ADMIN = "admin-secret-responses-live"
MODELS = json.dumps(
    [
        {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-"},
        {"id": "slow", "kind": "chat", "backend": "fake", "source": "-", "options": {"token_delay_s": 0.02}},
    ]
)
# Beats every 0.1 s: a runner gone for 1 s is stale, and sweeps come every 0.5 s.
ENV = {"HEARTH_MODELS": MODELS, "HEARTH_ADMIN_KEY": ADMIN, "HEARTH_RESPONSES_HEARTBEAT_S": "0.1"}


class Api:
    def __init__(self, server: LiveServer, key: str) -> None:
        self.server, self.headers = server, {"Authorization": f"Bearer {key}"}

    def create(self, **body: Any) -> dict[str, Any]:
        payload = {"model": "fake-chat", "max_output_tokens": 4, **body}
        reply = httpx.post(self.server.url + "/v1/responses", json=payload, headers=self.headers, timeout=30)
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()
        return data

    def get(self, rid: str) -> dict[str, Any]:
        reply = httpx.get(f"{self.server.url}/v1/responses/{rid}", headers=self.headers, timeout=30)
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()
        return data

    def cancel(self, rid: str) -> dict[str, Any]:
        reply = httpx.post(f"{self.server.url}/v1/responses/{rid}/cancel", headers=self.headers, timeout=30)
        data: dict[str, Any] = reply.json()
        return data

    def wait(self, rid: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.get(rid)
            if data["status"] in statuses:
                return data
            time.sleep(0.05)
        raise AssertionError(f"{rid} stayed {data['status']}")

    def chat_prompt_tokens(self, messages: list[dict[str, str]]) -> tuple[int, str]:
        body = {"model": "fake-chat", "messages": messages, "max_tokens": 4}
        reply = httpx.post(self.server.url + "/v1/chat/completions", json=body, headers=self.headers).json()
        return reply["usage"]["prompt_tokens"], reply["choices"][0]["message"]["content"]


def text(response: dict[str, Any]) -> str:
    return "".join(p["text"] for item in response["output"] for p in item.get("content", []))


def history(*pairs: tuple[str, dict[str, Any]]) -> list[dict[str, str]]:
    messages = []
    for question, answer in pairs:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": text(answer)}]
    return messages


def test_the_chain_survives_a_restart_and_cut_background_work_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with LiveServer(data, env=ENV) as server:
        api = Api(server, server.create_key(ADMIN, "restart"))
        one = api.create(input="first question")
        two = api.create(input="second question", previous_response_id=one["id"])
        graceful = api.create(model="slow", input="long", background=True, max_output_tokens=2000)
        api.wait(graceful["id"], {"in_progress"})
        server.stop(signal.SIGTERM)
    with LiveServer(data, env=ENV, port=server.port) as server:
        api = Api(server, api.headers["Authorization"].removeprefix("Bearer "))
        stopped = api.get(graceful["id"])
        assert stopped["status"] == "failed" and "server stopped" in stopped["error"]["message"]
        assert stopped["error"]["code"] == "server_error" and text(stopped)  # what it had generated
        three = api.create(input="third question", previous_response_id=two["id"])
        messages = [
            *history(("first question", one), ("second question", two)),
            {"role": "user", "content": "third question"},
        ]
        assert (three["usage"]["input_tokens"], text(three)) == api.chat_prompt_tokens(messages)
        killed = api.create(model="slow", input="long", background=True, max_output_tokens=2000)
        api.wait(killed["id"], {"in_progress"})
        server.stop(signal.SIGKILL)
    with LiveServer(data, env=ENV, port=server.port) as server:
        api = Api(server, api.headers["Authorization"].removeprefix("Bearer "))
        failed = api.wait(killed["id"], {"failed"})  # the sweep: its heartbeat went stale
        assert "server stopped" in failed["error"]["message"]


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    url, schema = fresh_postgres_schema_url()
    yield url
    drop_postgres_schema(schema)


def test_two_replicas_share_chains_cancels_and_failures(tmp_path: Path, postgres_schema: str) -> None:
    env = {**ENV, "HEARTH_DATABASE_URL": postgres_schema}
    with LiveServer(tmp_path / "a", env=env) as a, LiveServer(tmp_path / "b", env=env) as b:
        key = a.create_key(ADMIN, "replicas")
        on_a, on_b = Api(a, key), Api(b, key)
        one = on_a.create(input="first question")
        two = on_b.create(input="second question", previous_response_id=one["id"])
        three = on_a.create(input="third question", previous_response_id=two["id"])
        assert on_b.get(three["id"]) == three
        messages = [
            *history(("first question", one), ("second question", two)),
            {"role": "user", "content": "third question"},
        ]
        assert (three["usage"]["input_tokens"], text(three)) == on_b.chat_prompt_tokens(messages)

        # A cancel written by B reaches the run on A within a heartbeat.
        running = on_a.create(model="slow", input="long", background=True, max_output_tokens=2000)
        on_b.wait(running["id"], {"in_progress"})
        time.sleep(0.3)
        assert on_b.cancel(running["id"])["status"] == "cancelled"
        time.sleep(0.5)
        settled = on_b.get(running["id"])
        words = len(text(settled).split())
        assert settled["status"] == "cancelled" and 0 < words < 2000
        assert settled["usage"]["output_tokens"] == words  # A wrote what it had generated
        time.sleep(0.3)
        assert on_a.get(running["id"]) == settled  # and stopped: nothing more was added

        # A dies mid-run: B's sweep marks its work failed.
        orphan = on_a.create(model="slow", input="long", background=True, max_output_tokens=2000)
        on_b.wait(orphan["id"], {"in_progress"})
        a.stop(signal.SIGKILL)
        failed = on_b.wait(orphan["id"], {"failed"})
        assert "server stopped" in failed["error"]["message"]
