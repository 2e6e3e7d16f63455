"""API keys: 401 for missing/bad keys, 403 outside a key's scope, admin key management."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers.keys import MakeKey, admin_headers, bearer
from tests.helpers.wire import assert_envelope

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_missing_and_bad_keys_are_401(gw: TestClient, make_key: MakeKey) -> None:
    error = assert_envelope(gw.post("/v1/chat/completions", json=CHAT), 401, "invalid_api_key")
    assert "API key" in str(error["message"])
    assert_envelope(
        gw.post("/v1/chat/completions", json=CHAT, headers=bearer("hk-nope")), 401, "invalid_api_key"
    )
    assert_envelope(gw.get("/v1/models", headers={"Authorization": "Basic abc"}), 401, "invalid_api_key")
    assert_envelope(gw.get("/v1/models", headers=bearer("hk-" + "x" * 5000)), 401, "invalid_api_key")
    assert_envelope(gw.get("/v1/models", headers={"Authorization": "Bearer "}), 401, "invalid_api_key")
    assert_envelope(
        gw.get("/v1/models", headers={"Authorization": "Bearer hk-\u00e9t\u00e9".encode("latin-1")}), 401
    )


def test_every_keyed_route_refuses_a_call_without_a_key(gw: TestClient) -> None:
    """Routes get the key check from their router; a route that escaped it would answer here."""
    paths = gw.get("/openapi.json").json()["paths"]
    keyed = [(m, p) for p, ops in paths.items() for m in ops if p.startswith(("/v1/", "/admin/"))]
    assert len(keyed) >= 12
    for method, path in keyed:
        url = path.replace("{model_id}", "fake-chat").replace("{name}", "someone")
        reply = gw.request(method.upper(), url, json={})
        assert reply.status_code == 401, (method, path, reply.text)


def test_bearer_and_x_api_key_both_work(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("alice")
    assert secret.startswith("hk-")
    assert gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret)).status_code == 200
    assert gw.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": secret}).status_code == 200


def test_scope_is_enforced_with_403(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("embed-only", models=["fake-embed"])
    error = assert_envelope(gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret)), 403)
    assert error["type"] == "permission_error"
    assert (
        gw.post(
            "/v1/embeddings", json={"model": "fake-embed", "input": "x"}, headers=bearer(secret)
        ).status_code
        == 200
    )
    visible = [m["id"] for m in gw.get("/v1/models", headers=bearer(secret)).json()["data"]]
    assert visible == ["fake-embed"]
    assert_envelope(gw.get("/v1/models/fake-chat", headers=bearer(secret)), 403)


def test_revoke_and_rotate_take_effect_at_once(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("bob")
    assert gw.get("/v1/models", headers=bearer(secret)).status_code == 200
    rotated = gw.post("/admin/keys/bob/rotate", headers=admin_headers()).json()["secret"]
    assert_envelope(gw.get("/v1/models", headers=bearer(secret)), 401)
    assert gw.get("/v1/models", headers=bearer(rotated)).status_code == 200
    assert gw.post("/admin/keys/bob/revoke", headers=admin_headers()).json()["status"] == "revoked"
    assert_envelope(gw.get("/v1/models", headers=bearer(rotated)), 401)


def test_admin_routes_need_the_admin_key(gw: TestClient, make_key: MakeKey) -> None:
    assert_envelope(gw.get("/admin/keys"), 401)
    user = make_key("carol")
    assert_envelope(gw.get("/admin/keys", headers=bearer(user)), 401)
    listed = gw.get("/admin/keys", headers=admin_headers()).json()["data"]
    assert [k["name"] for k in listed] == ["carol"]
    assert "secret" not in listed[0] and "secret_hash" not in listed[0]


def test_admin_bad_input_is_clean_4xx(gw: TestClient, make_key: MakeKey) -> None:
    assert_envelope(gw.post("/admin/keys/ghost/revoke", headers=admin_headers()), 404)
    assert_envelope(gw.get("/admin/keys/ghost", headers=admin_headers()), 404)
    sql = gw.post("/admin/keys", json={"name": "x'; DROP TABLE api_keys; --"}, headers=admin_headers())
    assert_envelope(sql, 400)
    make_key("dave")
    assert_envelope(
        gw.post("/admin/keys", json={"name": "dave"}, headers=admin_headers()), 400, "key_name_taken"
    )
    assert_envelope(gw.post("/admin/keys", json={"name": "eve", "rpm": 0}, headers=admin_headers()), 400)
    assert gw.get("/admin/keys", headers=admin_headers()).status_code == 200  # the table survived


def test_bootstrap_admin_secret_file(tmp_path: object) -> None:
    import stat
    from pathlib import Path

    from hearth.gateway.auth import load_admin_secret

    data = Path(str(tmp_path)) / "d"
    first = load_admin_secret(data, None)
    assert first == load_admin_secret(data, None)
    assert stat.S_IMODE((data / "admin.key").stat().st_mode) == 0o600
    assert load_admin_secret(data, "configured") == "configured"
