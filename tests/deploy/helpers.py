"""Shared helpers for the deployment tests.

Tools these tests drive come from package registries, never from a download at run time:
Debian packages (podman, runc, debootstrap, caddy; ``make system-deps`` installs them) and two
PyPI tools kept apart from the project's venv in ``~/.cache/hearth/tools`` (created once):
``kubernetes-validate`` (bundles the Kubernetes JSON schemas) and ``podman-compose`` (``config``).
A missing tool skips its test, or fails it under ``HEARTH_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs" / "deploy"
ARTIFACTS = ROOT / "test-artifacts"
REQUIRE = os.environ.get("HEARTH_REQUIRE_SERVICES") == "1"

TOOLS_DIR = Path(os.environ.get("HEARTH_TOOLS_DIR", Path.home() / ".cache" / "hearth" / "tools"))
PYPI_TOOLS = ("kubernetes-validate==1.37.0", "podman-compose==1.6.0")


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
