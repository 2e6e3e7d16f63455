"""``hearth bench``: the engines timed in process, on fake engines and once on the real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hearth.cli.bench import gpu_support

FAKE_MODELS = json.dumps(
    [
        {
            "id": "fake-chat",
            "kind": "chat",
            "backend": "fake",
            "source": "-",
            "options": {"token_delay_s": 0.01},
        },
        {"id": "fake-embed", "kind": "embedding", "backend": "fake", "source": "-"},
        {"id": "fake-vision", "kind": "image-classification", "backend": "fake", "source": "-"},
    ]
)


def bench(tmp_path: Path, *args: str, models: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(HEARTH_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1", COLUMNS="200")
    if models:
        env["HEARTH_MODELS"] = models
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli", "bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def results(stdout: str) -> dict[tuple[str, str], dict[str, object]]:
    data = json.loads(stdout)
    return {(r["model"], r["metric"]): r for r in data["results"]}


def test_bench_fake_engines_json(tmp_path: Path) -> None:
    run = bench(
        tmp_path,
        "--tokens",
        "10",
        "--runs",
        "2",
        "--texts",
        "4",
        "--images",
        "3",
        "--json",
        models=FAKE_MODELS,
    )
    assert run.returncode == 0, run.stderr
    rows = results(run.stdout)
    decode = rows[("fake-chat", "decode, 1 stream")]
    # The fake engine sleeps 10 ms per token: the measured rate must reflect it.
    assert 20 < float(decode["cpu"]) < 110, decode  # type: ignore[arg-type]
    assert rows[("fake-embed", "embeddings, batch of 4")]["unit"] == "texts/s"
    assert float(rows[("fake-embed", "embeddings, one at a time")]["cpu"]) > 0  # type: ignore[arg-type]
    assert float(rows[("fake-vision", "per-image latency (p50)")]["cpu"]) > 0  # type: ignore[arg-type]
    assert ("fake-vision", "3 images sent together") in rows
    gpu = json.loads(run.stdout)["gpu"]
    support = gpu_support()
    assert gpu["llama_cpp"] == support.llama_cpp and gpu["torch_cuda"] == support.torch_cuda


def test_bench_table_and_model_selection(tmp_path: Path) -> None:
    run = bench(tmp_path, "--models", "fake-embed", "--texts", "2", models=FAKE_MODELS)
    assert run.returncode == 0, run.stderr
    assert "hearth bench" in run.stdout and "fake-embed" in run.stdout and "fake-chat" not in run.stdout
    assert "GPU:" in run.stdout
    unknown = bench(tmp_path, "--models", "nope", models=FAKE_MODELS)
    assert unknown.returncode == 1 and "no model nope" in unknown.stdout


def test_gpu_is_reported_unavailable_on_a_cpu_machine() -> None:
    support = gpu_support()
    if support.llama_cpp or support.torch_cuda:
        pytest.skip("this machine has a GPU build")
    assert "CPU build" in support.note and "no CUDA" in support.note


@pytest.mark.real
def test_bench_real_models_quick(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    run = bench(tmp_path, "--tokens", "16", "--runs", "1", "--texts", "8", "--images", "2", "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = results(run.stdout)
    assert float(rows[("gemma-3-270m", "decode, 1 stream")]["cpu"]) > 5  # type: ignore[arg-type]
    assert float(rows[("all-minilm-l6-v2", "embeddings, batch of 8")]["cpu"]) > 5  # type: ignore[arg-type]
    latency = float(rows[("efficientnet-lite0", "per-image latency (p50)")]["cpu"])  # type: ignore[arg-type]
    assert 0 < latency < 2000
