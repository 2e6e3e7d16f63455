"""Without HEARTH_ADMIN_KEY, replicas on one database agree on one bootstrap admin secret."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.keys import bearer


def test_replicas_sharing_a_database_accept_the_first_replicas_bootstrap_secret(tmp_path: Path) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    first_app = build_app(fake_settings(tmp_path / "a", no_auth=False, database_url=shared))
    with TestClient(first_app) as first:
        wait_ready(first)
        secret = (tmp_path / "a" / "data" / "admin.key").read_text().strip()
        assert first.get("/admin/keys", headers=bearer(secret)).status_code == 200
        # A second replica, with its own data dir, made its own bootstrap file at start...
        second_app = build_app(fake_settings(tmp_path / "b", no_auth=False, database_url=shared))
        own = tmp_path / "b" / "data" / "admin.key"
        theirs = own.read_text().strip()
        assert theirs != secret
        with TestClient(second_app) as second:
            wait_ready(second)
            # ...but accepts the first replica's secret, which the database holds, and not its own,
            # whose file it removed so that it misleads nobody.
            assert second.get("/admin/keys", headers=bearer(secret)).status_code == 200
            assert second.get("/admin/keys", headers=bearer(theirs)).status_code == 401
            assert not own.exists()
            made = second.post("/admin/keys", json={"name": "via-b"}, headers=bearer(secret))
            assert made.status_code == 201
            assert first.get("/admin/keys/via-b", headers=bearer(secret)).status_code == 200


def test_a_configured_admin_key_wins_and_a_restart_keeps_the_bootstrap_secret(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    with TestClient(build_app(fake_settings(tmp_path, no_auth=False, database_url=db))) as gw:
        wait_ready(gw)
        secret = (tmp_path / "data" / "admin.key").read_text().strip()
        assert gw.get("/admin/keys", headers=bearer(secret)).status_code == 200
    with TestClient(build_app(fake_settings(tmp_path, no_auth=False, database_url=db))) as gw:
        wait_ready(gw)
        assert gw.get("/admin/keys", headers=bearer(secret)).status_code == 200
    configured = fake_settings(tmp_path, no_auth=False, database_url=db, admin_key="hk-admin-configured")
    with TestClient(build_app(configured)) as gw:
        wait_ready(gw)
        assert gw.get("/admin/keys", headers=bearer("hk-admin-configured")).status_code == 200
        assert gw.get("/admin/keys", headers=bearer(secret)).status_code == 401
