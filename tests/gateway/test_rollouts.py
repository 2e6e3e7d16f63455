"""Rollout routes and run-time models through the admin API, on fake engines.

Canary splits by weight (checked against a binomial bound), A/B is sticky per key, blue-green
switches atomically while running requests finish where they started, shadow mirrors off the
request path; models load and drain at run time, and keep_alive unloads idle ones.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.keys import ADMIN, MakeKey, admin_headers, bearer
from tests.helpers.ledger import flush_ledger

CHAT = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 3}
SECOND = {"id": "fake-chat-2", "kind": "chat", "backend": "fake", "source": "-"}


def load(gw: TestClient, spec: dict[str, Any] = SECOND) -> dict[str, Any]:
    reply = gw.post("/admin/models", json=spec, headers=admin_headers())
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def put_route(gw: TestClient, alias: str, **body: Any) -> Any:
    return gw.put(f"/admin/routes/{alias}", json=body, headers=admin_headers())


def variant_of(gw: TestClient, secret: str, model: str = "chat") -> str:
    reply = gw.post("/v1/chat/completions", json={**CHAT, "model": model}, headers=bearer(secret))
    assert reply.status_code == 200, reply.text
    return reply.headers["x-hearth-variant"]


def test_models_load_at_run_time_and_a_failure_leaves_the_others_serving(
    gw: TestClient, make_key: MakeKey
) -> None:
    secret = make_key("runtime")
    assert load(gw)["state"] == "ready"
    assert variant_of(gw, secret, "fake-chat-2") == "fake-chat-2"
    broken = gw.post(
        "/admin/models",
        json={"id": "broken", "kind": "chat", "backend": "llama.cpp", "source": "/nowhere/model.gguf"},
        headers=admin_headers(),
    )
    assert broken.status_code == 400 and "failed to load" in broken.json()["error"]["message"]
    states = {m["id"]: m["state"] for m in gw.get("/admin/models", headers=admin_headers()).json()["data"]}
    assert states == {
        "fake-chat": "ready",
        "fake-embed": "ready",
        "fake-vision": "ready",
        "fake-chat-2": "ready",
        "broken": "failed",
    }
    assert gw.get("/ready").status_code == 200  # a run-time model never makes the server unready
    assert variant_of(gw, secret, "fake-chat") == "fake-chat"
    taken = gw.post("/admin/models", json={**SECOND, "id": "fc"}, headers=admin_headers())
    assert taken.status_code == 400  # "fc" is fake-chat's alias


def test_canary_follows_the_weights(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("canary")
    load(gw)
    reply = put_route(
        gw,
        "chat",
        strategy="canary",
        variants=[{"model": "fake-chat", "weight": 70}, {"model": "fake-chat-2", "weight": 30}],
    )
    assert reply.status_code == 200, reply.text
    n = 300
    seen = Counter(variant_of(gw, secret) for _ in range(n))
    expected, sigma = 0.7 * n, math.sqrt(n * 0.7 * 0.3)
    assert abs(seen["fake-chat"] - expected) < 4 * sigma, seen  # a 4-sigma binomial bound
    assert set(seen) == {"fake-chat", "fake-chat-2"}


def test_ab_is_sticky_per_key(gw: TestClient, make_key: MakeKey) -> None:
    load(gw)
    assert (
        put_route(
            gw,
            "chat",
            strategy="ab",
            variants=[{"model": "fake-chat", "weight": 50}, {"model": "fake-chat-2", "weight": 50}],
        ).status_code
        == 200
    )
    firsts = []
    for i in range(16):
        secret = make_key(f"ab{i}")
        seen = {variant_of(gw, secret) for _ in range(5)}
        assert len(seen) == 1  # the same key always lands on the same variant
        firsts.append(seen.pop())
    assert set(firsts) == {"fake-chat", "fake-chat-2"}  # and keys spread over both


def test_blue_green_switches_at_once_and_running_streams_finish_on_blue(
    gw_app: Any, make_key: MakeKey, gw: TestClient
) -> None:
    secret = make_key("bg")
    load(gw)
    blue = [{"model": "fake-chat", "weight": 100}, {"model": "fake-chat-2", "weight": 0}]
    assert put_route(gw, "chat", strategy="blue-green", variants=blue).status_code == 200
    engine = gw_app.state.registry.get("fake-chat", object)
    engine.token_delay_s = 0.02
    started = threading.Event()
    seen: dict[str, Any] = {}

    def stream() -> None:
        body = {**CHAT, "model": "chat", "max_tokens": 60, "stream": True}
        with gw.stream("POST", "/v1/chat/completions", json=body, headers=bearer(secret)) as reply:
            seen["variant"] = reply.headers["x-hearth-variant"]
            started.set()
            seen["body"] = reply.read().decode()

    thread = threading.Thread(target=stream)
    thread.start()
    assert started.wait(10)
    green = [{"model": "fake-chat", "weight": 0}, {"model": "fake-chat-2", "weight": 100}]
    assert put_route(gw, "chat", strategy="blue-green", variants=green).status_code == 200
    assert {variant_of(gw, secret) for _ in range(5)} == {"fake-chat-2"}  # switched, all at once
    thread.join(20)
    assert (
        seen["variant"] == "fake-chat"
        and "[DONE]" in seen["body"]
        and '"finish_reason":"length"' in seen["body"]
    )
    engine.token_delay_s = 0.0
    rollback = put_route(gw, "chat", strategy="blue-green", variants=blue)
    assert rollback.status_code == 200 and variant_of(gw, secret) == "fake-chat"


def test_shadow_answers_off_the_request_path_and_records_agreement(
    gw_app: Any, gw: TestClient, make_key: MakeKey
) -> None:
    secret = make_key("shadow")
    load(gw)
    route = put_route(gw, "chat", strategy="shadow", variants=[{"model": "fake-chat"}], shadow="fake-chat-2")
    assert route.status_code == 200, route.text
    replies = [
        gw.post("/v1/chat/completions", json={**CHAT, "model": "chat"}, headers=bearer(secret))
        for _ in range(3)
    ]
    assert {r.headers["x-hearth-variant"] for r in replies} == {"fake-chat"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and gw_app.state.root.shadows.waiting:
        time.sleep(0.05)
    time.sleep(0.2)
    flush_ledger(gw)
    with gw_app.state.root.database.engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(sa.text("SELECT * FROM usage_records WHERE shadow_of IS NOT NULL"))
        ]
    assert len(rows) == 3
    live_ids = {r.headers["x-request-id"] for r in replies}
    assert {r["shadow_of"] for r in rows} == live_ids
    for row in rows:
        assert row["variant"] == "fake-chat-2" and row["model"] == "fake-chat-2" and row["key_id"] is None
        assert 0.0 <= row["agreement"] <= 1.0 and row["exact_match"] in (0, 1, True, False)
        assert row["completion_tokens"] == 3  # its tokens are counted, against nobody's budget
    metrics = gw.get("/metrics").text
    assert 'hearth_shadow_requests_total{outcome="compared",route="chat",shadow="fake-chat-2"} 3.0' in metrics


def test_a_full_shadow_queue_drops_copies_and_counts_them(
    gw_app: Any, gw: TestClient, make_key: MakeKey
) -> None:
    secret = make_key("shadowq")
    load(gw)
    put_route(gw, "chat", strategy="shadow", variants=[{"model": "fake-chat"}], shadow="fake-chat-2")
    slow = gw_app.state.registry.get("fake-chat-2", object)
    slow.token_delay_s = 0.2  # each shadow takes ~0.6 s: the queue of 16 fills up
    for _ in range(24):
        assert variant_of(gw, secret) == "fake-chat"
    assert gw_app.state.root.shadows.dropped >= 4
    assert (
        'hearth_shadow_requests_total{outcome="dropped",route="chat",shadow="fake-chat-2"}'
        in gw.get("/metrics").text
    )


def test_route_validation(gw: TestClient) -> None:
    load(gw)
    cases = [
        (
            {
                "strategy": "canary",
                "variants": [{"model": "fake-chat", "weight": 60}, {"model": "fake-chat-2", "weight": 30}],
            },
            "add up to 100",
        ),
        ({"strategy": "canary", "variants": [{"model": "nope", "weight": 100}]}, "no model"),
        (
            {
                "strategy": "blue-green",
                "variants": [{"model": "fake-chat", "weight": 50}, {"model": "fake-chat-2", "weight": 50}],
            },
            "weight 100",
        ),
        (
            {
                "strategy": "canary",
                "variants": [{"model": "fake-chat", "weight": 50}, {"model": "fake-embed", "weight": 50}],
            },
            "same kind",
        ),
        ({"strategy": "shadow", "variants": [{"model": "fake-chat"}]}, "shadow model"),
        ({"strategy": "sideways", "variants": [{"model": "fake-chat"}]}, "strategy"),
    ]
    for body, message in cases:
        reply = gw.put("/admin/routes/chat", json=body, headers=admin_headers())
        assert reply.status_code == 400 and message in reply.json()["error"]["message"], (body, reply.text)
    assert (
        gw.put(
            "/admin/routes/fake-chat",
            json=cases[1][0] | {"variants": [{"model": "fake-chat"}]},
            headers=admin_headers(),
        ).status_code
        == 400
    )
    assert gw.get("/admin/routes", headers=admin_headers()).json()["data"] == []
    assert gw.delete("/admin/routes/chat", headers=admin_headers()).status_code == 404


def test_unloading_waits_for_running_requests(gw_app: Any, gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("drain")
    load(gw)
    gw_app.state.registry.get("fake-chat-2", object).token_delay_s = 0.02
    done: dict[str, Any] = {}

    def stream() -> None:
        body = {**CHAT, "model": "fake-chat-2", "max_tokens": 50, "stream": True}
        with gw.stream("POST", "/v1/chat/completions", json=body, headers=bearer(secret)) as reply:
            done["body"] = reply.read().decode()

    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(0.3)
    reply = gw.delete("/admin/models/fake-chat-2", headers=admin_headers())
    assert reply.status_code == 200
    thread.join(10)
    assert '"finish_reason":"length"' in done["body"]  # it finished before the unload
    gone = gw.post("/v1/chat/completions", json={**CHAT, "model": "fake-chat-2"}, headers=bearer(secret))
    assert gone.status_code == 404
    assert gw.delete("/admin/models/fake-chat", headers=admin_headers()).status_code == 400  # from the config


def test_keep_alive_unloads_an_idle_model_and_the_next_call_loads_it(
    gw_app: Any, gw: TestClient, make_key: MakeKey
) -> None:
    secret = make_key("keepalive")
    load(gw, {**SECOND, "keep_alive_s": 0.3})
    assert variant_of(gw, secret, "fake-chat-2") == "fake-chat-2"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and gw_app.state.registry.entry("fake-chat-2").state != "unloaded":
        time.sleep(0.1)
    assert gw_app.state.registry.entry("fake-chat-2").state == "unloaded"
    assert gw.get("/ready").status_code == 200
    assert variant_of(gw, secret, "fake-chat-2") == "fake-chat-2"  # loaded again on demand
    assert gw_app.state.registry.entry("fake-chat-2").state == "ready"


def test_usage_compares_variants(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("cmp")
    load(gw)
    put_route(
        gw,
        "chat",
        strategy="canary",
        variants=[{"model": "fake-chat", "weight": 50}, {"model": "fake-chat-2", "weight": 50}],
    )
    for _ in range(20):
        variant_of(gw, secret)
    flush_ledger(gw)
    usage = gw.get("/admin/usage", headers=admin_headers()).json()
    variants = usage["variants"]
    assert set(variants) == {"fake-chat", "fake-chat-2"}
    assert sum(v["requests"] for v in variants.values()) == 20
    assert all(v["avg_latency_ms"] is not None and v["errors"] == 0 for v in variants.values())
    mine = gw.get("/v1/usage", headers=bearer(secret)).json()
    assert sum(v["requests"] for v in mine["variants"].values()) == 20


def test_a_route_change_reaches_another_replica_within_a_second(tmp_path: Path) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    apps = [
        build_app(fake_settings(tmp_path / f"r{i}", no_auth=False, admin_key=ADMIN, database_url=shared))
        for i in range(2)
    ]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        wait_ready(first)
        wait_ready(second)
        assert load(first)["state"] == "ready"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "fake-chat-2" not in {
            s.spec.id for s in apps[1].state.registry.entries
        }:
            time.sleep(0.05)
        assert apps[1].state.registry.entry("fake-chat-2").state in ("loading", "ready")
        time.sleep(0.2)
        body = {
            "strategy": "blue-green",
            "variants": [{"model": "fake-chat-2", "weight": 100}, {"model": "fake-chat", "weight": 0}],
        }
        assert put_route(first, "chat", **body).status_code == 200
        changed = time.monotonic()
        while time.monotonic() - changed < 2 and "chat" not in apps[1].state.root.replicas.routes:
            time.sleep(0.02)
        assert time.monotonic() - changed < 1.0
        route = second.get("/admin/routes/chat", headers=admin_headers()).json()
        assert route["strategy"] == "blue-green" and route["variants"][0]["model"] == "fake-chat-2"
