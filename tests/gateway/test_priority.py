"""Which fair-admission ticket a call gets: its key, its key's class and weight, the request's
own priority (never more urgent than the class), and shadow copies last."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from hearth.engines.fair_queue import Ticket
from hearth.gateway.call import Call, Identity
from hearth.gateway.priority import SHADOW_PRIORITY, ticket_for
from hearth.store.keys import ApiKeyView
from tests.helpers.keys import admin_headers
from tests.helpers.wire import assert_envelope


def _call(priority: str = "interactive", weight: float = 1.0, shadow_of: str | None = None) -> Call:
    key = ApiKeyView(
        id=7, name="k", prefix="hk-x", models=None, rpm=None, tpm=None, max_concurrent=None,
        monthly_tokens=None, expires_at=None, revoked_at=None, created_at=datetime.now(UTC),
        last_used_at=None, priority=priority, weight=weight,
    )  # fmt: skip
    call = Call(Identity("req", "openai", "POST /v1/chat/completions", key=key))
    call.resolution.shadow_of = shadow_of
    return call


def test_tickets_follow_the_key_and_the_request() -> None:
    assert ticket_for(_call()) == Ticket("key:7", 0, 1.0)
    assert ticket_for(_call("batch", 3.0)) == Ticket("key:7", 20, 3.0)
    assert ticket_for(_call("standard"), requested=-50).priority == 10, "never ahead of its class"
    assert ticket_for(_call("standard"), requested=15).priority == 15, "a request may yield"
    assert ticket_for(_call(shadow_of="req-live")).priority == SHADOW_PRIORITY
    line = _call()
    line.identity.batch_id = "batch_1"
    assert ticket_for(line, requested=0).priority == 20, "a batch line runs in the batch class"


def test_keys_are_made_with_a_class_and_a_weight(gw: TestClient) -> None:
    made = gw.post(
        "/admin/keys", json={"name": "nightly", "priority": "batch", "weight": 0.5}, headers=admin_headers()
    )
    assert made.status_code == 201, made.text
    assert (made.json()["priority"], made.json()["weight"]) == ("batch", 0.5)
    assert gw.get("/admin/keys/nightly", headers=admin_headers()).json()["priority"] == "batch"
    assert_envelope(
        gw.post("/admin/keys", json={"name": "x", "priority": "urgent"}, headers=admin_headers()), 400
    )
    assert_envelope(gw.post("/admin/keys", json={"name": "y", "weight": 0}, headers=admin_headers()), 400)
