"""OIP v2 through the gateway with keys on: 401, 403, 429 in OIP's shape, and ledger rows that say
family ``oip``; the unauthenticated probes write no rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready

ADMIN = "admin-secret-oip"
EMBED = "/v2/models/fake-embed/infer"
TEXTS = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a b c", "d e"]}]}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(build_app(fake_settings(tmp_path, no_auth=False, admin_key=ADMIN))) as client:
        wait_ready(client)
        yield client


def make_key(client: TestClient, name: str, **limits: Any) -> dict[str, str]:
    reply = client.post("/admin/keys", json={"name": name, **limits}, headers=bearer(ADMIN))
    assert reply.status_code == 201, reply.text
    return bearer(reply.json()["secret"])


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def rows(client: TestClient) -> list[dict[str, Any]]:
    database = client.app.state.root.database  # type: ignore[attr-defined]
    assert database.ledger.flush(10)
    with database.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))]


def error_of(reply: Any, status: int) -> str:
    assert reply.status_code == status, reply.text
    assert list(reply.json()) == ["error"]
    return str(reply.json()["error"])


def test_keys_are_required_but_probes_and_server_metadata_are_public(keyed: TestClient) -> None:
    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        assert keyed.get(path).status_code == 200
    assert "API key" in error_of(keyed.post(EMBED, json=TEXTS), 401)
    error_of(keyed.get("/v2/models/fake-embed"), 401)
    error_of(keyed.get("/v2/models/fake-embed/ready", headers=bearer("hk-wrong")), 401)
    key = make_key(keyed, "reader")
    assert keyed.get("/v2/models/fake-embed", headers=key).status_code == 200
    assert keyed.post(EMBED, json=TEXTS, headers=key).status_code == 200


def test_a_key_scoped_to_other_models_is_403(keyed: TestClient) -> None:
    key = make_key(keyed, "chat-only", models=["fake-chat"])
    assert "may not use" in error_of(keyed.post(EMBED, json=TEXTS, headers=key), 403)
    error_of(keyed.get("/v2/models/fake-embed", headers=key), 403)
    index = keyed.post("/v2/repository/index", headers=key).json()
    assert [m["name"] for m in index] == ["fake-chat"]


def test_rate_limit_and_monthly_quota_are_429(keyed: TestClient) -> None:
    fast = make_key(keyed, "rpm", rpm=1)
    assert keyed.post(EMBED, json=TEXTS, headers=fast).status_code == 200
    limited = keyed.post(EMBED, json=TEXTS, headers=fast)
    error_of(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    budget = make_key(keyed, "budget", monthly_tokens=3)
    assert keyed.post(EMBED, json=TEXTS, headers=budget).status_code == 200  # 9 tokens
    rows(keyed)  # flushed: the month's use is now in the database
    assert "budget" in error_of(keyed.post(EMBED, json=TEXTS, headers=budget), 429)


def test_usage_rows_say_family_oip(keyed: TestClient) -> None:
    key = make_key(keyed, "ledger")
    ok = keyed.post(EMBED, json=TEXTS, headers=key)
    image = {"name": "image", "shape": [3], "datatype": "UINT8", "data": [1, 2, 3]}
    keyed.post("/v2/models/fake-vision/infer", json={"inputs": [image]}, headers=key)  # not an image: 400
    keyed.post("/v2/models/nope/infer", json=TEXTS, headers=key)
    keyed.get("/v2/health/ready")  # a probe: no row
    keyed.get("/v2/health/live")
    keyed.post(EMBED, json=TEXTS)  # no key: recorded, without one
    recorded = rows(keyed)
    assert [r["family"] for r in recorded] == ["oip"] * 4
    embed, bad_image, missing, anonymous = recorded
    assert embed["request_id"] == ok.headers["x-request-id"]
    assert (embed["key_name"], embed["model"], embed["status_code"]) == ("ledger", "fake-embed", 200)
    assert embed["route"] == "POST /v2/models/{name:path}/infer" and embed["prompt_tokens"] == 9
    assert bad_image["status_code"] == 400 and bad_image["error_type"] == "invalid_image"
    assert bad_image["model"] == "fake-vision" and bad_image["images"] == 1
    assert missing["status_code"] == 404 and missing["model"] == "-"
    assert anonymous["status_code"] == 401 and anonymous["key_id"] is None
    usage = keyed.get("/v1/usage", headers=key).json()
    assert usage["requests"] == 3
