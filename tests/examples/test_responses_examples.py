"""The Responses API curl example against a live fake-engine server: a turn, the next, a stream."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.fake_server import FakeHearth, need_program

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "curl" / "responses.sh"


@pytest.fixture(scope="module")
def env(hearth: FakeHearth) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return {
        **clean,
        "HEARTH_BASE_URL": hearth.url,
        "HEARTH_API_KEY": hearth.create_key("responses-examples"),
        "HEARTH_CHAT_MODEL": "fake-chat",
    }


def run(env: dict[str, str], *args: str) -> str:
    need_program("curl")
    done = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_conversation_the_server_keeps(env: dict[str, str]) -> None:
    first = json.loads(run(env, "Name a colour"))
    assert first["object"] == "response" and first["output"][0]["content"][0]["text"]
    assert first["usage"]["output_tokens"] == 32 and first["previous_response_id"] is None
    second = json.loads(run(env, "And another?", first["id"]))
    assert second["previous_response_id"] == first["id"]
    # The first question and answer came from the store, not from the request.
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"] + first["usage"]["output_tokens"]


def test_streamed_events(env: dict[str, str]) -> None:
    events = [
        line.removeprefix("event: ")
        for line in run(env, "--stream", "Hi").splitlines()
        if line.startswith("event: ")
    ]
    assert events[:2] == ["response.created", "response.in_progress"]
    assert events.count("response.output_text.delta") == 32 and events[-1] == "response.incomplete"
