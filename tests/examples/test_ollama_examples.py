"""The Ollama curl example against a live fake-engine server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.fake_server import FakeHearth, need_program

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "curl" / "ollama_chat.sh"


@pytest.fixture(scope="module")
def env(hearth: FakeHearth) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    key = hearth.create_key("ollama-example")
    return {**clean, "HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": key, "HEARTH_CHAT_MODEL": "fake-chat"}


def run(env: dict[str, str], *args: str) -> str:
    need_program("curl")
    done = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_curl_ollama_chat_streams_ndjson(env: dict[str, str]) -> None:
    chunks = [json.loads(line) for line in run(env, "Say hi").splitlines() if line]
    assert len(chunks) == 33 and chunks[-1]["done"] is True and chunks[-1]["eval_count"] == 32
    assert len("".join(c["message"]["content"] for c in chunks).split()) == 32


def test_curl_ollama_chat_without_stream(env: dict[str, str]) -> None:
    reply = json.loads(run(env, "--no-stream", 'Say "hi"'))
    assert reply["done"] is True and reply["done_reason"] == "length" and reply["eval_count"] == 32
