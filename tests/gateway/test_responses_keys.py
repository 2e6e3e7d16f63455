"""Stored responses under keys: ownership, one usage row per response, limits, the admin purge."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.helpers.keys import MakeKey, admin_headers, bearer
from tests.helpers.ledger import rows


def create(client: TestClient, secret: str, **body: Any) -> dict[str, Any]:
    reply = client.post(
        "/v1/responses",
        json={"model": "fake-chat", "input": "hi", "max_output_tokens": 3, **body},
        headers=bearer(secret),
    )
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def wait_done(client: TestClient, secret: str, rid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data: dict[str, Any] = client.get(f"/v1/responses/{rid}", headers=bearer(secret)).json()
        if data["status"] not in ("queued", "in_progress"):
            return data
        time.sleep(0.02)
    raise AssertionError(f"{rid} still {data['status']}")


def test_another_key_sees_nothing(gw: TestClient, make_key: MakeKey) -> None:
    alice, bob = make_key("alice"), make_key("bob")
    mine = create(gw, alice)
    for method, path in [
        ("GET", f"/v1/responses/{mine['id']}"),
        ("GET", f"/v1/responses/{mine['id']}/input_items"),
        ("POST", f"/v1/responses/{mine['id']}/cancel"),
        ("DELETE", f"/v1/responses/{mine['id']}"),
    ]:
        reply = gw.request(method, path, headers=bearer(bob))
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "response_not_found", path
    steal = gw.post(
        "/v1/responses",
        json={"model": "fake-chat", "input": "x", "previous_response_id": mine["id"]},
        headers=bearer(bob),
    )
    assert steal.status_code == 404 and steal.json()["error"]["param"] == "previous_response_id"
    assert gw.get(f"/v1/responses/{mine['id']}", headers=bearer(alice)).status_code == 200
    assert gw.get(f"/v1/responses/{mine['id']}").status_code == 401


def test_one_usage_row_per_response_with_family_openai(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("ledger")
    plain = create(gw, secret)
    with gw.stream(
        "POST",
        "/v1/responses",
        json={"model": "fake-chat", "input": "hi", "max_output_tokens": 3, "stream": True},
        headers=bearer(secret),
    ) as reply:
        reply.read()
    background = create(gw, secret, background=True, max_output_tokens=5)
    done = wait_done(gw, secret, background["id"])
    time.sleep(0.1)  # the background call closes just after its row is final
    recorded = [r for r in rows(gw) if r["route"].startswith("POST /v1/responses")]
    assert len(recorded) == 3, recorded
    first, streamed, worked = recorded
    assert {r["family"] for r in recorded} == {"openai"} and {r["key_name"] for r in recorded} == {"ledger"}
    assert first["completion_tokens"] == 3 == plain["usage"]["output_tokens"] and not first["stream"]
    assert streamed["stream"] and streamed["completion_tokens"] == 3
    assert worked["route"] == "POST /v1/responses (background)"
    assert worked["completion_tokens"] == 5 == done["usage"]["output_tokens"]
    assert worked["prompt_tokens"] == done["usage"]["input_tokens"] and worked["status_code"] == 200
    assert worked["request_id"] != first["request_id"]


def test_a_cancelled_background_response_writes_its_row(
    gw_app: Any, make_key: MakeKey, gw: TestClient
) -> None:
    secret = make_key("cancel")
    slow = {"model": "fake-chat", "input": "FAIL_MIDSTREAM", "max_output_tokens": 9, "background": True}
    failed = create(gw, secret, **slow)
    assert wait_done(gw, secret, failed["id"])["status"] == "failed"
    engine = gw_app.state.registry.get("fake-chat", object)
    engine.token_delay_s = 0.02
    running = create(gw, secret, background=True, max_output_tokens=1000)
    time.sleep(0.2)
    cancelled = gw.post(f"/v1/responses/{running['id']}/cancel", headers=bearer(secret)).json()
    assert cancelled["status"] == "cancelled"
    time.sleep(0.1)
    work = [r for r in rows(gw) if r["route"] == "POST /v1/responses (background)"]
    assert [(r["status_code"], r["error_type"]) for r in work] == [
        (500, "engine_failure"),
        (499, "cancelled"),
    ]
    assert work[1]["completion_tokens"] == cancelled["usage"]["output_tokens"] > 0
    assert len([r for r in rows(gw) if r["route"] == "POST /v1/responses"]) == 0  # handed off, no rows


def test_max_concurrent_bounds_background_work_which_can_still_be_polled(
    gw_app: Any, gw: TestClient, make_key: MakeKey
) -> None:
    secret = make_key("one-at-a-time", max_concurrent=1)
    gw_app.state.registry.get("fake-chat", object).token_delay_s = 0.02
    running = create(gw, secret, background=True, max_output_tokens=1000)
    more = gw.post(
        "/v1/responses",
        json={"model": "fake-chat", "input": "x", "background": True},
        headers=bearer(secret),
    )
    assert more.status_code == 429 and "background" in more.json()["error"]["message"]
    # The work holds no request slot: the key polls it, and even asks for more in the foreground.
    assert gw.get(f"/v1/responses/{running['id']}", headers=bearer(secret)).status_code == 200
    assert create(gw, secret)["status"] == "incomplete"
    cancelled = gw.post(f"/v1/responses/{running['id']}/cancel", headers=bearer(secret))
    assert cancelled.json()["status"] == "cancelled"
    assert create(gw, secret, background=True)["status"] == "queued"  # room again


def test_admin_purges_by_age(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("purge")
    old, new = create(gw, secret), create(gw, secret)
    engine = gw.app.state.root.database.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE responses SET created_at = :t WHERE id = :id"),
            {"t": (datetime.now(UTC) - timedelta(days=10)).replace(tzinfo=None), "id": old["id"]},
        )
    assert (
        gw.delete("/admin/responses", params={"older_than_days": 7}, headers=bearer(secret)).status_code
        == 401
    )
    purged = gw.delete("/admin/responses", params={"older_than_days": 7}, headers=admin_headers())
    assert purged.json() == {"object": "responses.purge", "older_than_days": 7.0, "deleted": 1}
    assert gw.get(f"/v1/responses/{old['id']}", headers=bearer(secret)).status_code == 404
    assert gw.get(f"/v1/responses/{new['id']}", headers=bearer(secret)).status_code == 200
    assert gw.delete("/admin/responses", headers=admin_headers()).status_code == 400  # the age is required
