"""What the operator console calls beyond keys: loading and unloading a configured model on this
replica, and everyone's usage per key (and each variant's shadow agreement)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import MakeKey
from tests.helpers.keys import admin_headers, bearer
from tests.helpers.ledger import flush_ledger


def test_unload_then_load_a_configured_model(gw: TestClient) -> None:
    unloaded = gw.post("/admin/models/fake-embed/unload", headers=admin_headers())
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "unloaded"
    listed = {m["id"]: m["state"] for m in gw.get("/admin/models", headers=admin_headers()).json()["data"]}
    assert listed["fake-embed"] == "unloaded" and listed["fake-chat"] == "ready"
    loaded = gw.post("/admin/models/fake-embed/load", headers=admin_headers())
    assert loaded.status_code == 200 and loaded.json()["state"] == "ready"
    missing = gw.post("/admin/models/nope/load", headers=admin_headers())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert gw.post("/admin/models/fake-embed/unload").status_code == 401


def test_everyones_usage_per_key(gw: TestClient, make_key: MakeKey) -> None:
    for name, count in (("ann", 2), ("bob", 1)):
        secret = make_key(name)
        for _ in range(count):
            reply = gw.post(
                "/v1/embeddings", headers=bearer(secret), json={"model": "fake-embed", "input": "hi"}
            )
            assert reply.status_code == 200
    flush_ledger(gw)
    usage = gw.get("/admin/usage", headers=admin_headers()).json()
    assert usage["keys"]["ann"]["requests"] == 2 and usage["keys"]["bob"]["requests"] == 1
    assert usage["keys"]["ann"]["avg_agreement"] is None
    own = gw.get("/v1/usage", headers=bearer(make_key("carol"))).json()
    assert own["keys"] == {}


def test_a_keys_recent_requests_and_hours(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("recent")
    assert (
        gw.post(
            "/v1/embeddings", headers=bearer(secret), json={"model": "fake-embed", "input": "a"}
        ).status_code
        == 200
    )
    missing = gw.post("/v1/embeddings", headers=bearer(secret), json={"model": "nope", "input": "a"})
    assert missing.status_code == 404
    flush_ledger(gw)
    recent = gw.get("/v1/usage/recent?limit=5", headers=bearer(secret)).json()
    newest, older = recent["requests"][:2]
    assert newest["status"] == 404 and newest["error"] == "model_not_found"
    assert older["status"] == 200 and older["model"] == "fake-embed" and older["prompt_tokens"] > 0
    assert older["latency_ms"] >= 0 and older["route"] == "POST /v1/embeddings"
    hours = recent["hours"]
    assert [h["hour"] for h in hours] == list(range(len(hours))) and 1 <= len(hours) <= 24
    assert hours[-1]["requests"] >= 2 and hours[-1]["errors"] >= 1
    per_model = {m["model"]: m for m in gw.get("/v1/usage", headers=bearer(secret)).json()["models"]}
    assert per_model["fake-embed"]["errors"] == 0
    assert sum(m["errors"] for m in per_model.values()) == 1
    again = gw.get("/v1/usage/recent", headers=bearer(secret)).json()["requests"]
    assert len(again) == 2  # reading one's own usage is not itself a request on record
    assert gw.get("/v1/usage/recent?limit=0", headers=bearer(secret)).status_code == 400
