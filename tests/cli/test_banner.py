"""The start-up banner: printed once the server is ready (never before), short, and exact about
where to go, what loaded, whether auth is on and how to get a key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hearth.cli.banner import LoadedModel, browser_host, hearth_command, key_command, render
from hearth.config import ModelKind, Settings
from tests.helpers.live import free_port

MODELS = [
    LoadedModel("smollm2-135m-instruct", ModelKind.CHAT, ("smollm2", "default")),
    LoadedModel("all-minilm-l6-v2", ModelKind.EMBEDDING, ("minilm",)),
]


def test_the_banner_says_where_to_go_and_how_to_get_a_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", port=8123)
    text = render(
        settings,
        MODELS,
        admin_key_file=tmp_path / "data" / "admin.key",
        command=".venv/bin/hearth",
        checkout=True,
    )
    lines = text.splitlines()
    assert lines[0] == "Hearth is ready at http://127.0.0.1:8123"
    assert "http://127.0.0.1:8123/ " in text and "/docs" in text  # the playground and the API docs
    assert "smollm2-135m-instruct (chat, default)" in text and "all-minilm-l6-v2 (embeddings)" in text
    assert "auth          on" in text
    assert f"HEARTH_DATA_DIR={tmp_path / 'data'} .venv/bin/hearth keys create me" in text
    assert "make key NAME=me" in text and "make chat" in text
    assert str(tmp_path / "data" / "admin.key") in text
    assert "doctor" not in text  # nothing is degraded
    assert len(lines) <= 10


def test_no_auth_failed_models_and_problems_are_said(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, no_auth=True)
    broken = [*MODELS, LoadedModel("big", ModelKind.CHAT, (), error="FileNotFoundError: big.gguf")]
    text = render(
        settings, broken, admin_key_file=None, problems=["only 100 MiB of memory left"], command="hearth"
    )
    assert "auth          off (--no-auth)" in text and "keys create" not in text
    assert "! big failed to load: FileNotFoundError: big.gguf" in text
    assert "! only 100 MiB of memory left" in text
    assert "`hearth doctor`" in text
    assert "big (chat" not in text  # only what loaded is listed as loaded


def test_the_key_command_names_this_servers_store_and_never_its_secrets(tmp_path: Path) -> None:
    config = tmp_path / "hearth.yaml"
    pg = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u:s3cret@db/hearth", config=None)
    assert key_command(pg, "hearth") == "HEARTH_DATABASE_URL=... hearth keys create me"
    assert "s3cret" not in render(pg, MODELS, admin_key_file=None, command="hearth")
    config.write_text("log_level: info\n")
    with_config = Settings(data_dir=tmp_path, config=config)
    assert key_command(with_config, "hearth").endswith(f"hearth keys create me --config {config}")
    admin_env = render(
        Settings(data_dir=tmp_path, admin_key="x" * 20), MODELS, admin_key_file=None, command="hearth"
    )
    assert "HEARTH_ADMIN_KEY" in admin_env and "x" * 20 not in admin_env


def test_hosts_and_commands() -> None:
    assert browser_host("0.0.0.0") == "127.0.0.1" and browser_host("::") == "[::1]"
    assert browser_host("192.168.1.5") == "192.168.1.5" and browser_host("example.org") == "example.org"
    assert hearth_command("/repo/.venv/bin/hearth", Path("/repo")) == ".venv/bin/hearth"
    assert hearth_command("/opt/elsewhere/bin/hearth", Path("/repo")) == "/opt/elsewhere/bin/hearth"
    assert hearth_command("/repo/src/hearth/cli/__main__.py", Path("/repo")).endswith(" -m hearth.cli")


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    models = json.dumps(
        [{"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-", "aliases": ["default"]}]
    )
    env = {"HEARTH_DATA_DIR": str(tmp_path / "data"), "HEARTH_MODELS": models, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearth.cli", "serve", "--port", str(port), "--log-level", "warning", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def test_the_banner_comes_once_the_server_is_ready_and_quiet_drops_it(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path)
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()  # blocks until the banner's first line
        assert first.startswith(f"Hearth is ready at {url}")
        assert httpx.get(url + "/ready").status_code == 200  # it was printed after readiness
        rest = [proc.stdout.readline() for _ in range(5)]
        assert any("fake-chat (chat, default)" in line for line in rest)
    finally:
        proc.terminate()
        proc.wait(30)
    quiet, url = _serve(tmp_path, "--quiet")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        quiet.terminate()
        out, _ = quiet.communicate(timeout=30)
    assert "Hearth is ready" not in out


@pytest.mark.parametrize("flag", ["--no-auth"])
def test_the_banner_says_when_auth_is_off(tmp_path: Path, flag: str) -> None:
    proc, _ = _serve(tmp_path, flag)
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
    finally:
        proc.terminate()
        proc.wait(30)
    assert any("auth          off (--no-auth)" in line for line in lines)
