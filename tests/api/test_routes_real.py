"""Every route once against the real default models, with small max_tokens."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import skimage.data

from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

SKIMAGE = Path(skimage.data.__file__).parent


@pytest.fixture(scope="module")
def http(real_server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=real_server.url, timeout=120)


def test_ready_and_model_details(http: httpx.Client) -> None:
    assert http.get("/ready").status_code == 200
    gemma = http.get("/v1/models/gemma-3-270m").json()["details"]
    assert gemma["quantization"] == "Q4_K_M"
    assert 200e6 < gemma["parameters"] < 300e6
    assert gemma["context_length"] >= 2048
    assert gemma["file_size_bytes"] > 100e6
    vision = http.get("/v1/models/efficientnet-lite0").json()["details"]
    assert 4e6 < vision["parameters"] < 6e6


def test_seed_makes_sampling_repeatable(http: httpx.Client) -> None:
    body = {
        "model": "gemma-3-270m",
        "prompt": "My favourite animal is",
        "max_tokens": 10,
        "temperature": 1.0,
        "seed": 7,
    }
    first = http.post("/v1/completions", json=body).json()["choices"][0]["text"]
    second = http.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert first == second


def test_stop_and_logit_bias(http: httpx.Client) -> None:
    body = {"model": "gemma-3-270m", "prompt": "1, 2, 3, 4, 5,", "max_tokens": 12, "temperature": 0}
    text = http.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert " 6" in text
    stopped = http.post("/v1/completions", json={**body, "stop": ["7"]}).json()["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert "7" not in stopped["text"]
    # Find the first token greedy decoding chooses, then forbid it: the output must change.
    greedy = http.post("/v1/completions", json={**body, "max_tokens": 1}).json()["choices"][0]["text"]
    banned = {str(t): -100 for t in _token_ids(http, greedy)}
    other = http.post("/v1/completions", json={**body, "max_tokens": 1, "logit_bias": banned}).json()
    assert other["choices"][0]["text"] != greedy


def _token_ids(http: httpx.Client, text: str) -> list[int]:
    reply = http.post("/v1/tokenize", json={"model": "gemma-3-270m", "prompt": text}).json()
    return [t for t in reply["tokens"] if t != 2]  # drop BOS


def test_embeddings_route(http: httpx.Client) -> None:
    reply = http.post("/v1/embeddings", json={"model": "minilm", "input": "hello world"}).json()
    assert len(reply["data"][0]["embedding"]) == 384
    assert reply["usage"]["prompt_tokens"] == 4  # [CLS] hello world [SEP]
    too_long = http.post("/v1/embeddings", json={"model": "minilm", "input": "word " * 600})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "context_length_exceeded"


def test_metrics_show_batching_on_the_real_engines(http: httpx.Client) -> None:
    def counters() -> dict[str, float]:
        found: dict[str, float] = {}
        for line in http.get("/metrics").text.splitlines():
            if line.startswith(("hearth_engine_batches_total", "hearth_engine_batch_items_total")):
                name, value = line.rsplit(" ", 1)
                found[name] = float(value)
        return found

    before = counters()
    http.post("/v1/embeddings", json={"model": "minilm", "input": ["one", "two", "three"]})
    prompt = {"model": "gemma-3-270m", "prompt": "Once upon a time", "max_tokens": 3, "temperature": 0}
    http.post("/v1/completions", json=prompt)
    after = counters()

    def grew(metric: str, model: str) -> float:
        key = f'{metric}{{model="{model}"}}'
        return after[key] - before.get(key, 0.0)

    # Three texts in one request share one forward pass.
    assert grew("hearth_engine_batches_total", "all-minilm-l6-v2") == 1
    assert grew("hearth_engine_batch_items_total", "all-minilm-l6-v2") == 3
    # A prefill step (at least one token, the rest may come from the prefix cache), then one
    # decode step for each sampled token but the last.
    assert grew("hearth_engine_batches_total", "gemma-3-270m") >= 3
    assert grew("hearth_engine_batch_items_total", "gemma-3-270m") >= 3


def test_classify_real_photos(http: httpx.Client) -> None:
    cat = (SKIMAGE / "chelsea.png").read_bytes()
    reply = http.post("/v1/classify", json={"image": base64.b64encode(cat).decode(), "top_k": 3}).json()
    assert reply["model"] == "efficientnet-lite0"
    assert "cat" in reply["predictions"][0]["label"].lower()
    coffee = (SKIMAGE / "coffee.png").read_bytes()
    upload = http.post(
        "/v1/classify", files={"image": ("coffee.png", coffee, "image/png")}, data={"top_k": "3"}
    )
    labels = " | ".join(p["label"].lower() for p in upload.json()["predictions"])
    assert any(word in labels for word in ("cup", "espresso", "coffee mug"))
    broken = http.post("/v1/classify", files={"image": ("x.png", cat[:5000], "image/png")})
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_image"


def test_cli_models_info(real_server: LiveServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hearth.cli", "models", "info", "gemma-3-270m"],
        capture_output=True,
        text=True,
        env={"HEARTH_DATA_DIR": str(real_server.data_dir), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        timeout=120,
        check=True,
    ).stdout
    for expected in ("parameters", "Q4_K_M", "context_length", "cpu", "file_size_bytes"):
        assert expected in out
