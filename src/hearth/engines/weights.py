"""Weight files read without loading them: parameter counts of safetensors and torch checkpoints."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".onnx"}


def weights_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in WEIGHT_SUFFIXES)


def parameters_of(path: Path) -> int | None:
    if path.suffix == ".safetensors":
        return safetensors_parameters(path)
    if path.suffix in {".pt", ".pth", ".bin"}:
        return torch_checkpoint_parameters(path)
    return None


def safetensors_parameters(path: Path) -> int:
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(length))
    total = 0
    for name, tensor in header.items():
        if name != "__metadata__":
            count = 1
            for d in tensor["shape"]:
                count *= d
            total += count
    return total


def torch_checkpoint_parameters(path: Path) -> int | None:
    """Learned parameters of a torch checkpoint, from its pickled tensor records.

    Reads only the pickled structure (zip ``data.pkl``, or the legacy format's object pickle),
    never the tensor data, with a restricted unpickler; batch-norm running statistics are not
    parameters and are left out.
    """
    # A restricted Unpickler below refuses every class but tensor records (bandit B403).
    import pickle  # nosec B403

    class _Tensor:
        def __init__(self, shape: tuple[int, ...]) -> None:
            self.shape = shape

    def rebuild(_storage: object, _offset: int, size: tuple[int, ...], *_rest: object) -> _Tensor:
        return _Tensor(tuple(size))

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if name in {"_rebuild_tensor_v2", "_rebuild_tensor"}:
                return rebuild
            if (module, name) == ("collections", "OrderedDict"):
                import collections

                return collections.OrderedDict
            if module.startswith("torch"):
                return lambda *args, **kwargs: None
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed")

        def persistent_load(self, pid: Any) -> None:
            return None

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                with archive.open(name) as handle:
                    state = _Unpickler(handle).load()
        else:  # the legacy format: magic number, protocol, system info, then the object itself
            with path.open("rb") as handle:
                for _ in range(3):
                    _Unpickler(handle).load()
                state = _Unpickler(handle).load()
    except (OSError, StopIteration, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, AttributeError):
        return None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        return None
    skip = ("running_mean", "running_var", "num_batches_tracked")
    total = 0
    for key, tensor in state.items():
        if isinstance(tensor, _Tensor) and not str(key).endswith(skip):
            count = 1
            for d in tensor.shape:
                count *= d
            total += count
    return total
