"""``hearth models list --live``: a running server's models, with each upstream endpoint's state."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_store import hearth
from tests.helpers.live import LiveServer, free_port
from tests.helpers.upstream import FakeUpstream


def test_models_list_live_shows_each_upstream_endpoint(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with FakeUpstream() as upstream:
        models = [
            {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-"},
            {"id": "up", "kind": "chat", "backend": "openai", "source": upstream.url, "endpoints": [dead],
             "upstream_model": "up-chat", "health_check_s": 0.2},
        ]  # fmt: skip
        data_dir = tmp_path / "data"
        with LiveServer(data_dir, env={"HEARTH_MODELS": json.dumps(models)}) as server:
            # The admin key comes from the data directory the server wrote it to.
            listed = hearth(data_dir, "models", "list", "--live", "--base-url", server.url).stdout
    assert f"models at {server.url}" in listed
    rows = {line.split("│")[1].strip(): line for line in listed.splitlines() if line.count("│") > 5}
    assert "local" in rows["fake-chat"]
    assert upstream.url in rows["up"] and "healthy" in rows["up"] and "closed" in rows["up"]
    dead_row = next(line for line in listed.splitlines() if dead in line)
    assert "down" in dead_row


def test_models_list_live_without_a_server_says_so(tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("hk-admin-x\n")
    url = f"http://127.0.0.1:{free_port()}"
    failed = hearth(tmp_path, "models", "list", "--live", "--base-url", url, check=False)
    assert failed.returncode == 1
    assert f"no Hearth server answers at {url}" in failed.stdout


def test_models_list_live_without_an_admin_key_says_where_it_is(tmp_path: Path) -> None:
    failed = hearth(tmp_path, "models", "list", "--live", check=False)
    assert failed.returncode == 2
    assert "no admin key" in failed.stdout and "HEARTH_ADMIN_KEY" in failed.stdout
