"""The README's quickstart, run as written, in order, from a copy of the checkout, on the real
default models: `make serve` prints its banner, `make chat` answers a first question sensibly,
`make key` prints a key, and the README's Python snippet works with that key.

The copy shares this checkout's .venv (a symlink) and keeps the files' modification times, so
`make` finds everything installed, as it would on a second run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.live import free_port

pytestmark = pytest.mark.real
ROOT = Path(__file__).resolve().parents[2]


def quickstart_blocks() -> tuple[list[str], str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    shell = re.search(r"```bash\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert shell and python, "the quickstart needs a bash block and a python block"
    commands = [line.split("#", 1)[0].strip() for line in shell.group(1).splitlines()]
    return [c for c in commands if c], python.group(1)


def copy_checkout(target: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(ROOT / ".venv")
    return target


def test_the_readme_quickstart_works_as_written(tmp_path: Path) -> None:
    stamp = ROOT / ".venv" / ".hearth-installed"
    if not stamp.exists() or shutil.which("make") is None:
        pytest.fail("run through `make test`, which creates .venv")
    if any(stamp.stat().st_mtime < (ROOT / name).stat().st_mtime for name in ("Makefile", "pyproject.toml")):
        # make would reinstall into the shared .venv from the copy, and point it there.
        pytest.fail(".venv is older than the Makefile or pyproject.toml: run `make install` first")
    commands, snippet = quickstart_blocks()
    assert commands == ["make serve", "make chat", "make key NAME=alice"], commands
    checkout = copy_checkout(tmp_path / "hearth")
    port = free_port()
    # Not MAKELEVEL/MAKEFLAGS either: under `make test` the README's make would run as a sub-make.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTH_", "MAKE", "MFLAGS"))}
    env.update(
        HEARTH_DATA_DIR=str(tmp_path / "data"),
        HEARTH_PORT=str(port),
        HEARTH_BASE_URL=f"http://127.0.0.1:{port}",
        HF_HUB_OFFLINE="1",
    )
    serve = subprocess.Popen(
        commands[0].split(),
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stdout is not None
        started, banner = time.monotonic(), []
        for line in serve.stdout:
            if banner or line.startswith("Hearth is ready"):
                banner.append(line.rstrip())
            if any(b.lstrip().startswith("admin key") for b in banner) or time.monotonic() - started > 300:
                break
        text = "\n".join(banner)
        assert f"Hearth is ready at http://127.0.0.1:{port}" in text, text
        assert "smollm2-135m-instruct (chat, default)" in text and "make chat" in text

        chat = subprocess.run(
            commands[1].split(), cwd=checkout, env=env, input="What is the capital of France?\n",
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert chat.returncode == 0, chat.stderr
        assert "Paris" in chat.stdout, chat.stdout  # a first chat that makes sense

        key = subprocess.run(
            commands[2].split(), cwd=checkout, env=env, capture_output=True, text=True, timeout=120
        )
        assert key.returncode == 0, key.stderr
        secret = key.stdout.strip().splitlines()[-1]
        assert secret.startswith("hk-")

        code = snippet.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}").replace(
            '"hk-..."', repr(secret)
        )
        answer = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
        )
        assert answer.returncode == 0, answer.stderr
        assert "Paris" in answer.stdout, answer.stdout
    finally:
        serve.terminate()
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        # make runs hearth as a child: stop it too if it outlived make
        subprocess.run(["pkill", "-f", f"hearth serve.*{port}|HEARTH_PORT={port}"], check=False)
