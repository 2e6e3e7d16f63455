"""The ``hearth`` CLI for keys, usage, db and serve's safety checks, run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def hearth(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update({"HEARTH_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=check,
    )


def test_keys_lifecycle(tmp_path: Path) -> None:
    created = hearth(
        tmp_path,
        "keys",
        "create",
        "alice",
        "--models",
        "gemma-3-270m",
        "--rpm",
        "5",
        "--tpm",
        "1000",
        "--max-concurrent",
        "2",
        "--monthly-tokens",
        "100000",
        "--expires-days",
        "30",
    )
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("hk-") and len(secret) > 40
    assert secret not in created.stderr
    listed = hearth(tmp_path, "keys", "list").stdout
    assert "alice" in listed and "active" in listed and "gemma-3-270m" in listed
    assert secret not in listed
    rotated = hearth(tmp_path, "keys", "rotate", "alice").stdout.strip().splitlines()[-1]
    assert rotated.startswith("hk-") and rotated != secret
    assert "revoked alice" in hearth(tmp_path, "keys", "revoke", "alice").stdout
    assert "revoked" in hearth(tmp_path, "keys", "list").stdout
    # Only hashes are at rest.
    database = (tmp_path / "hearth.db").read_bytes()
    assert secret.encode() not in database and rotated.encode() not in database


def test_keys_bad_input_is_a_clean_error(tmp_path: Path) -> None:
    hearth(tmp_path, "keys", "create", "bob")
    duplicate = hearth(tmp_path, "keys", "create", "bob", check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stdout
    sql = hearth(tmp_path, "keys", "create", "x'; DROP TABLE api_keys;--", check=False)
    assert sql.returncode == 1 and "invalid key name" in sql.stdout
    missing = hearth(tmp_path, "keys", "revoke", "ghost", check=False)
    assert missing.returncode == 1 and "no key named" in missing.stdout
    assert "Traceback" not in duplicate.stderr + sql.stderr + missing.stderr


def test_usage_db_migrate_and_backup(tmp_path: Path) -> None:
    assert "revision" in hearth(tmp_path, "db", "migrate").stdout
    usage = hearth(tmp_path, "usage").stdout
    assert "requests" in usage and "per model" in usage
    backup = hearth(tmp_path, "db", "backup", str(tmp_path / "copy.db")).stdout
    assert "backup written" in backup and (tmp_path / "copy.db").stat().st_size > 0


def test_no_auth_refuses_public_bind(tmp_path: Path) -> None:
    refused = hearth(tmp_path, "serve", "--no-auth", "--host", "0.0.0.0", check=False)
    assert refused.returncode == 2
    assert "refuses" in refused.stdout


@pytest.mark.parametrize("args", [["models", "list"], ["--help"]])
def test_help_and_models_list(tmp_path: Path, args: list[str]) -> None:
    out = hearth(tmp_path, *args).stdout
    assert "gemma-3-270m" in out or "serve" in out


def test_keys_local_makes_one_key_then_reuses_it(tmp_path: Path) -> None:
    first = hearth(tmp_path, "keys", "local", "--name", "me-local")
    secret = first.stdout.strip()
    assert secret.startswith("hk-") and "kept in" in first.stderr
    saved = tmp_path / "local-keys" / "me-local.key"
    assert saved.read_text().strip() == secret and (saved.stat().st_mode & 0o777) == 0o600
    again = hearth(tmp_path, "keys", "local", "--name", "me-local")
    assert again.stdout.strip() == secret and again.stderr == ""  # reused, nothing made
    saved.unlink()  # the file is lost: the same key gets a new secret (no second key)
    rotated = hearth(tmp_path, "keys", "local", "--name", "me-local").stdout.strip()
    assert rotated != secret and rotated.startswith("hk-")
    listed = hearth(tmp_path, "keys", "list").stdout
    assert listed.count("me-local") == 1
    hearth(tmp_path, "keys", "revoke", "me-local")
    refused = hearth(tmp_path, "keys", "local", "--name", "me-local", check=False)
    assert refused.returncode == 1 and "was revoked" in refused.stdout + refused.stderr


def test_db_purge_responses(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from hearth.inference.responses import ResponseRecord
    from hearth.store.database import Database
    from hearth.store.migrate import upgrade
    from hearth.store.responses import ResponseStore

    url = f"sqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    store = ResponseStore(Database(url).sessions)
    for rid, age in (("resp_old", 40), ("resp_new", 1)):
        created = datetime.now(UTC) - timedelta(days=age)
        store.insert(ResponseRecord(rid, None, "m", "completed", created), [])
    done = hearth(tmp_path, "db", "purge-responses", "--older-than-days", "30")
    assert "deleted 1 stored responses older than 30 days" in done.stdout
    assert store.get("resp_old", None) is None and store.get("resp_new", None) is not None
    assert hearth(tmp_path, "db", "purge-responses", check=False).returncode == 2  # the age is required
