"""A real llama.cpp ``llama-server`` as the upstream, on the real SmolLM2 GGUF.

The server is built from the llama.cpp that the llama-cpp-python sdist vendors
(``bench/build_llama_server.sh``: about 4 minutes on 2 cores the first time, then cached under
``~/.cache/hearth``). The front Hearth reaches it in OpenAI's dialect; the official OpenAI and
Anthropic clients talk to the front, streaming; the usage the front reports and records is
llama-server's own, and ``count_tokens`` is llama-server's template and tokenizer.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from hearth.config import SMOLLM2_SOURCE
from hearth.engines.llama.model_file import resolve_gguf
from tests.helpers.live import LiveServer, free_port

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[3]
ASK = [{"role": "user", "content": "What is the capital of France?"}]
SYSTEM = "You are a helpful assistant. Answer briefly and accurately."  # the default model's


def llama_server_binary() -> str:
    env = dict(os.environ)
    if platform.machine() == "x86_64":  # the flags the Makefile gives the wheel (AMX crashes some CPUs)
        env["CFLAGS"] = env["CXXFLAGS"] = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    built = subprocess.run(
        ["bash", str(ROOT / "bench" / "build_llama_server.sh")],
        capture_output=True, text=True, env=env, timeout=1800, check=True,
    )  # fmt: skip
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = resolve_gguf(SMOLLM2_SOURCE, tmp_path_factory.mktemp("gguf"))
    port = free_port()
    process = subprocess.Popen(
        [llama_server_binary(), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "8192",
         "--parallel", "2", "-t", "2", "--log-disable"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("llama-server did not become healthy")
        yield url
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def front(llama_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # SmolLM2 as Hearth serves it by default: its system prompt, greedy with a light repeat penalty.
    models = [
        {"id": "smol", "kind": "chat", "backend": "openai", "source": llama_server + "/v1",
         "system_prompt": SYSTEM, "sampling": {"temperature": 0.0, "repeat_penalty": 1.1}},
    ]  # fmt: skip
    env = {"HEARTH_MODELS": json.dumps(models)}
    with LiveServer(tmp_path_factory.mktemp("front") / "data", "--no-auth", env=env) as server:
        yield server


def ledger(server: LiveServer) -> list[tuple[str, int, int, int]]:
    with sqlite3.connect(server.data_dir / "hearth.db") as db:
        query = "SELECT route, prompt_tokens, completion_tokens, status_code FROM usage_records ORDER BY id"
        return list(db.execute(query))


def test_openai_sdk_streams_with_llama_servers_usage(front: LiveServer, llama_server: str) -> None:
    sdk = openai.OpenAI(base_url=front.url + "/v1", api_key="-", max_retries=0)
    stream = sdk.chat.completions.create(
        model="smol", messages=ASK, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )  # type: ignore[arg-type]
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert "Paris" in text and usage is not None and 0 < usage.completion_tokens <= 16
    system = [{"role": "system", "content": SYSTEM}]
    direct = httpx.post(
        llama_server + "/v1/chat/completions",
        json={"messages": system + ASK, "max_tokens": 16, "temperature": 0, "repeat_penalty": 1.1},
        timeout=60,
    ).json()
    assert usage.prompt_tokens == direct["usage"]["prompt_tokens"]  # llama-server's own count
    time.sleep(1.5)  # the ledger writes off the request path
    route, prompt, completion, status = ledger(front)[-1]
    assert (route, prompt, completion, status) == (
        "POST /v1/chat/completions",
        usage.prompt_tokens,
        usage.completion_tokens,
        200,
    )


def test_anthropic_sdk_over_llama_server(front: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=front.url, api_key="-", max_retries=0)
    with client.messages.stream(model="smol", max_tokens=16, messages=ASK) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    prompt = final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)  # llama-server's cache
    assert "Paris" in text and prompt > 10 and final.usage.output_tokens > 0
    counted = client.messages.count_tokens(model="smol", messages=ASK)  # type: ignore[arg-type]
    assert counted.input_tokens == prompt  # llama-server's template and tokenizer, as it served


def test_completions_and_the_context_llama_server_states(front: LiveServer) -> None:
    sdk = openai.OpenAI(base_url=front.url + "/v1", api_key="-", max_retries=0)
    completion = sdk.completions.create(
        model="smol", prompt="The capital of France is", max_tokens=4, temperature=0
    )
    assert (
        completion.choices[0].text
        and completion.usage is not None
        and completion.usage.completion_tokens <= 4
    )
    card = httpx.get(front.url + "/v1/models/smol").json()
    assert card["details"]["context_length"] and card["ready"] is True
