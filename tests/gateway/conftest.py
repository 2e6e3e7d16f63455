"""An auth-enabled app on fake engines, with helpers to make keys through the admin API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers import ADMIN, MakeKey, admin_headers, fake_settings, wait_ready


@pytest.fixture
def gw_app(tmp_path: Path) -> Any:
    settings = fake_settings(tmp_path, no_auth=False, admin_key=ADMIN)
    return build_app(settings)


@pytest.fixture
def gw(gw_app: Any) -> Iterator[TestClient]:
    with TestClient(gw_app) as client:
        wait_ready(client)
        yield client


@pytest.fixture
def make_key(gw: TestClient) -> MakeKey:
    def make(name: str, **limits: Any) -> str:
        reply = gw.post("/admin/keys", json={"name": name, **limits}, headers=admin_headers())
        assert reply.status_code == 201, reply.text
        secret: str = reply.json()["secret"]
        return secret

    return make
