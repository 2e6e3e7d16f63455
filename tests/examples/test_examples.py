"""Every script in examples/ against a live fake-engine server: the curl scripts and the Node SDK."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.fake_server import FakeHearth, need_program
from tests.helpers.images import chelsea

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def env(hearth: FakeHearth) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return {
        **clean,
        "HEARTH_BASE_URL": hearth.url,
        "HEARTH_API_KEY": hearth.create_key("examples"),
        "HEARTH_CHAT_MODEL": "fake-chat",
        "HEARTH_EMBED_MODEL": "fake-embed",
    }


def run(env: dict[str, str], *command: str, cwd: Path | None = None, timeout: float = 60) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def curl_script(env: dict[str, str], name: str, *args: str) -> str:
    need_program("curl")
    return run(env, "bash", str(EXAMPLES / "curl" / name), *args)


def test_curl_chat_and_completions(env: dict[str, str]) -> None:
    chat = json.loads(curl_script(env, "chat.sh", 'Say "hi" \\ twice'))
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["content"]
    assert chat["usage"]["completion_tokens"] == 32
    completion = json.loads(curl_script(env, "completions.sh"))
    assert completion["object"] == "text_completion" and completion["usage"]["completion_tokens"] == 24


def test_curl_streaming_chat(env: dict[str, str]) -> None:
    lines = [line for line in curl_script(env, "chat_stream.sh").splitlines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(text.split()) == 32 and len(chunks) > 30
    assert chunks[-1]["usage"]["completion_tokens"] == 32


def test_curl_embeddings_models_and_classify(env: dict[str, str]) -> None:
    embeddings = json.loads(curl_script(env, "embeddings.sh", "one", "two", "three"))
    assert [d["index"] for d in embeddings["data"]] == [0, 1, 2]
    assert len(embeddings["data"][0]["embedding"]) == 8
    models = json.loads(curl_script(env, "models.sh"))
    assert [m["id"] for m in models["data"]] == ["fake-chat", "slow-chat", "fake-embed", "fake-vision"]
    assert json.loads(curl_script(env, "models.sh", "fake-embed"))["kind"] == "embedding"
    classified = json.loads(curl_script(env, "classify.sh", str(chelsea()), "2"))
    assert classified["model"] == "fake-vision" and len(classified["predictions"]) == 2


def test_curl_scripts_report_errors(env: dict[str, str]) -> None:
    need_program("curl")
    done = subprocess.run(
        ["bash", str(EXAMPLES / "curl" / "models.sh")],
        env={**env, "HEARTH_API_KEY": "hk-wrong"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and json.loads(done.stdout)["error"]["code"] == "invalid_api_key"


def test_node_openai_sdk(env: dict[str, str]) -> None:
    node = need_program("node")
    npm = need_program("npm")
    project = EXAMPLES / "node"
    if not (project / "node_modules" / "openai").is_dir():
        run(env, npm, "ci", "--no-audit", "--no-fund", cwd=project, timeout=300)
    out = run(env, node, "chat.mjs", cwd=project).splitlines()
    assert out[0] == "models: fake-chat, slow-chat, fake-embed, fake-vision"
    assert out[1].startswith("chat: ") and len(out[1].split()) == 33
    assert json.loads(out[2].removeprefix("chat usage: "))["completion_tokens"] == 32
    assert out[3].startswith("stream: ") and len(out[3].split()) == 33
    deltas, usage = out[4].removeprefix("stream deltas: ").split(", usage: ")
    assert int(deltas) == 32 and json.loads(usage)["completion_tokens"] == 32
    assert out[5] == "embeddings: 2 vectors of 8 dimensions"  # base64 from the server, decoded by the SDK
