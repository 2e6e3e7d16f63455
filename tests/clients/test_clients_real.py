"""``hearth.clients`` and the ``hearth chat`` / ``hearth analyze`` programs on the real default models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data

from hearth.clients import AsyncHearthClient, BadRequestError, HearthClient
from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

CHELSEA = Path(skimage.data.__file__).parent / "chelsea.png"


@pytest.fixture(scope="module")
def client(real_server: LiveServer) -> HearthClient:
    return HearthClient(real_server.url, timeout=120)


def hearth(real_server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update({"HEARTH_BASE_URL": real_server.url, "COLUMNS": "200"})
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_client_on_real_models(client: HearthClient) -> None:
    reply = client.chat(
        [
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        model="gemma-3-270m",
        max_tokens=16,
        temperature=0,
    )
    assert "Paris" in reply.text and reply.usage is not None and reply.usage.prompt_tokens > 10
    stream = client.chat_stream("Count from one to five.", model="gemma-3-270m", max_tokens=12, temperature=0)
    deltas = list(stream)
    assert len(deltas) > 3 and stream.finish_reason in {"stop", "length"}
    assert stream.usage is not None and 0 < stream.usage.completion_tokens <= 12
    vectors = client.embed(["a cat", "a kitten", "a tax form"], model="all-minilm-l6-v2").vectors
    assert len(vectors[0]) == 384
    top = client.classify(CHELSEA, top_k=3).predictions[0]
    assert "cat" in top.label and top.confidence > 0.3
    # The default chat model reads an image as the image classifier's labels (a pipeline).
    described = client.chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What animal is in this picture?"},
                    client.image_part(CHELSEA),
                ],
            }
        ],
        model="default",
        max_tokens=40,
    )
    assert "cat" in described.text.lower(), described.text
    with pytest.raises(BadRequestError, match="not fetched by this server"):
        client.chat(
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
                }
            ],
            model="default",
        )


async def test_async_client_on_real_models(real_server: LiveServer) -> None:
    async with AsyncHearthClient(real_server.url + "/v1", timeout=120) as c:
        stream = await c.chat_stream("Say hello.", model="gemma-3-270m", max_tokens=8, temperature=0)
        assert "".join([d async for d in stream]).strip() and stream.usage is not None


def test_chat_and_analyze_programs(real_server: LiveServer) -> None:
    system = "You answer in one short sentence."
    chat = hearth(
        real_server,
        "chat",
        "--system",
        system,
        "--max-tokens",
        "16",
        "--temperature",
        "0",
        "What is the capital of France?",
    )
    assert chat.returncode == 0, chat.stderr
    assert "Paris" in chat.stdout  # the default chat model: smollm2-135m-instruct
    analyzed = hearth(real_server, "analyze", str(CHELSEA), "--top-k", "3")
    assert analyzed.returncode == 0, analyzed.stderr
    assert "efficientnet-lite0" in analyzed.stdout and "tabby" in analyzed.stdout
