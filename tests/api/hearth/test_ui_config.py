"""``GET /ui/config``: what the sign-in page is told before it has a key, over plain HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.cli.banner import hearth_command, key_command
from hearth.config import ModelKind, ModelSpec, default_models
from hearth.engines.context import EngineContext
from hearth.engines.registry import ModelRegistry
from hearth.gateway.catalog import Catalog
from hearth.gateway.resolver import Resolver
from hearth.gateway.routing import RouteTable
from hearth.guide import is_loopback
from tests.helpers.apps import fake_settings

ADMIN = "admin-secret-not-for-the-page"


def _config(tmp_path: Path, visitor: str = "127.0.0.1", **overrides: object) -> tuple[dict[str, object], str]:
    settings = fake_settings(tmp_path, **overrides)
    with TestClient(build_app(settings), client=(visitor, 50000)) as client:
        reply = client.get("/ui/config")  # no key: the page asks before sign-in
        assert reply.status_code == 200, reply.text
        assert reply.headers["cache-control"] == "no-store"
        body: dict[str, object] = reply.json()
        if visitor == "127.0.0.1":
            assert body["key_command"] in (None, key_command(settings, hearth_command()))
        return body, reply.text


def test_a_visitor_from_another_machine_learns_no_path(tmp_path: Path) -> None:
    """On a server bound to the network, the page before sign-in names no folder or file."""
    body, text = _config(tmp_path, "192.168.1.20", no_auth=False, host="0.0.0.0", config=None)
    assert body["key_command"] == "hearth keys create me" and body["make_key"] is None
    assert body["admin_key"] == "DATA_DIR/admin.key"
    assert str(tmp_path) not in text


def test_auth_on_says_how_to_get_a_key_and_holds_no_secret(tmp_path: Path) -> None:
    body, text = _config(tmp_path, no_auth=False, admin_key=ADMIN, chat={"aliases": ["default"]})
    assert body["auth"] is True and body["loopback"] is True
    assert body["default_chat_model"] == "fake-chat"
    command = str(body["key_command"])
    assert command.endswith("keys create me") and f"HEARTH_DATA_DIR={tmp_path / 'data'}" in command
    assert body["admin_key"] == "HEARTH_ADMIN_KEY"  # the place, never the value
    assert ADMIN not in text


def test_admin_key_file_is_named_not_read_out(tmp_path: Path) -> None:
    body, text = _config(tmp_path, no_auth=False)
    admin_file = tmp_path / "data" / "admin.key"
    assert body["admin_key"] == str(admin_file)
    assert admin_file.read_text().strip() not in text


def test_database_url_is_not_shown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'private-name.db'}"
    body, text = _config(tmp_path, no_auth=False, database_url=url)
    assert str(body["key_command"]).startswith("HEARTH_DATABASE_URL=... ")
    assert "private-name" not in text


def test_no_auth_skips_the_key_story(tmp_path: Path) -> None:
    body, _ = _config(tmp_path)  # fake_settings runs with --no-auth
    assert body["auth"] is False
    assert body["key_command"] is None and body["make_key"] is None and body["admin_key"] is None
    assert body["default_chat_model"] == "fake-chat"  # no "default" alias: the first chat model


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.7", False),
        ("hearth.example.com", False),
    ],
)
def test_loopback_flag(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_wildcard_bind_is_not_loopback(tmp_path: Path) -> None:
    body, _ = _config(tmp_path, no_auth=False, host="0.0.0.0")
    assert body["loopback"] is False and body["auth"] is True


def _catalog(specs: list[ModelSpec], tmp_path: Path) -> Catalog:
    registry = ModelRegistry(specs, EngineContext(tmp_path))
    return Catalog(registry, Resolver(registry, RouteTable()))


def test_default_chat_model_follows_the_alias(tmp_path: Path) -> None:
    assert _catalog(default_models(), tmp_path).default_chat_model() == "smollm2-135m-instruct"
    embed_only = [ModelSpec(id="e", kind=ModelKind.EMBEDDING, backend="fake", source="-")]
    assert _catalog(embed_only, tmp_path).default_chat_model() is None
