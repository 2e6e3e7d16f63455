"""The Anthropic curl example against a live fake-engine server, with a key in x-api-key."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.fake_server import FakeHearth, need_program

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "curl" / "anthropic_messages.sh"


@pytest.fixture(scope="module")
def env(hearth: FakeHearth) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return {
        **clean,
        "HEARTH_BASE_URL": hearth.url,
        "HEARTH_API_KEY": hearth.create_key("anthropic-examples"),
        "HEARTH_CHAT_MODEL": "fake-chat",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    need_program("curl")
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_curl_message(env: dict[str, str]) -> None:
    done = run(env, 'Say "hi"')
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["type"] == "message" and reply["content"][0]["text"]
    assert (reply["stop_reason"], reply["usage"]["output_tokens"]) == ("max_tokens", 32)


def test_curl_message_stream(env: dict[str, str]) -> None:
    done = run(env, "--stream")
    assert done.returncode == 0, done.stderr
    events = [line.removeprefix("event: ") for line in done.stdout.splitlines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events.count("content_block_delta") == 32


def test_curl_message_error(env: dict[str, str]) -> None:
    done = run({**env, "HEARTH_API_KEY": "hk-wrong"})
    assert done.returncode != 0
    assert json.loads(done.stdout)["error"]["type"] == "authentication_error"
