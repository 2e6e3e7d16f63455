"""Shared helpers for the deployment tests.

Tools these tests drive come from package registries, never from a download at run time:
Debian packages (podman, runc, debootstrap, caddy; ``make system-deps`` installs them) and two
PyPI tools kept apart from the project's venv in ``~/.cache/hearth/tools`` (created once):
``kubernetes-validate`` (bundles the Kubernetes JSON schemas) and ``podman-compose`` (``config``).
A missing tool skips its test, or fails it under ``HEARTH_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs" / "deploy"
ARTIFACTS = ROOT / "test-artifacts"
from tests.helpers.services import REQUIRE_SERVICES as REQUIRE  # noqa: E402

TOOLS_DIR = Path(os.environ.get("HEARTH_TOOLS_DIR", Path.home() / ".cache" / "hearth" / "tools"))
PYPI_TOOLS = ("kubernetes-validate==1.37.0", "podman-compose==1.6.0")
PODMAN = ("podman", "--runtime", "runc")
BASE_IMAGE = "localhost/debian-python:bookworm"
IMAGE = "localhost/hearth:test"
WHEEL_SOURCES = (
    (Path("/opt/wheels"), "torch-2.13.0+cpu-*.whl"),
    # The Makefile's build: native, without AMX (see the Makefile).
    (Path.home() / ".cache" / "hearth" / "wheels" / "native-no-amx-noomp", "llama_cpp_python-0.3.36-*.whl"),
)


def stage_wheels() -> list[str]:
    """Copy the machine's prebuilt wheels into the build context (deploy/wheels/, git-ignored)."""
    target = DEPLOY / "wheels"
    staged = []
    for folder, pattern in WHEEL_SOURCES:
        for wheel in sorted(folder.glob(pattern)):
            copy = target / wheel.name
            same = copy.exists() and copy.stat().st_size == wheel.stat().st_size
            if not same or copy.stat().st_mtime != wheel.stat().st_mtime:
                shutil.copy2(wheel, copy)  # same bytes and mtime keep podman's COPY cache valid
            staged.append(wheel.name)
    return staged


def _step(log: Path, *args: str, timeout: float) -> float:
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        result = run(*args, timeout=timeout, cwd=ROOT)
        out.write(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        pytest.fail(f"{' '.join(args[:3])}… failed ({result.returncode}); log {log}:\n{tail}")
    return time.perf_counter() - started


def build_image() -> str:
    """The hearth image, built once per session (the `image` fixture in conftest.py)."""
    # Installs podman, runc and debootstrap when missing (as root) and configures podman.
    setup = run("bash", str(DEPLOY / "scripts" / "setup-podman.sh"), timeout=600)
    if setup.returncode != 0:
        unavailable(f"podman cannot be set up here:\n{setup.stdout}{setup.stderr}")
    need_command("podman")
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "container-build.log"
    log.write_text("")
    base_s = _step(log, "bash", str(DEPLOY / "scripts" / "build-base-image.sh"), timeout=900)
    wheels = stage_wheels()
    build_s = _step(
        log,
        *PODMAN,
        "build",
        "--network=host",
        "--format",
        "docker",  # keeps HEALTHCHECK (the OCI format drops it)
        "--layers",
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "-f",
        "deploy/Containerfile",
        "-t",
        IMAGE,
        ".",
        timeout=2400,
    )
    text = log.read_text()
    timings = {
        "base_image_s": round(base_s, 1),
        "build_s": round(build_s, 1),
        "cached_steps": text.count("--> Using cache"),
        "wheels": wheels,
    }
    (ARTIFACTS / "container-build.json").write_text(json.dumps(timings, indent=2))
    print(f"container build: {timings}")
    return IMAGE


def unavailable(message: str) -> NoReturn:
    """Skip, or fail when CI requires every tool (HEARTH_REQUIRE_SERVICES=1)."""
    if REQUIRE:
        pytest.fail(message + " (HEARTH_REQUIRE_SERVICES=1: deployment tools are required)")
    pytest.skip(message)


def need_command(name: str, hint: str = "make system-deps") -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed ({hint})")
    return path


def tool(name: str) -> str:
    """A console script of the PyPI tools venv, created on first use."""
    venv = TOOLS_DIR / "venv"
    marker = venv / (".installed-" + "-".join(p.replace("==", "") for p in PYPI_TOOLS))
    if not marker.exists():
        try:
            if not (venv / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--quiet", *PYPI_TOOLS],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            unavailable(f"could not install {', '.join(PYPI_TOOLS)} into {venv}: {exc} {detail[-2000:]}")
        marker.touch()
    path = venv / "bin" / name
    if not path.exists():
        unavailable(f"{path} is missing")
    return str(path)


def run(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload, no-any-return]
