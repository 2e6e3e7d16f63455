"""Per-key limits on fake engines, in-process storage: rpm, tpm, concurrency, monthly budget."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from tests.helpers.keys import MakeKey, bearer
from tests.helpers.ledger import flush_ledger
from tests.helpers.wire import assert_envelope

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_rpm_limit_429_with_headers(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("rpm", rpm=2)
    first = gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret)).status_code == 200
    third = gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
    error = assert_envelope(third, 429, "rate_limit_exceeded")
    assert "2 requests per minute" in str(error["message"])
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["x-ratelimit-remaining-requests"] == "0"


def test_tpm_reserves_max_tokens_and_refunds(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("tpm", tpm=100)
    too_big = gw.post("/v1/chat/completions", json={**CHAT, "max_tokens": 200}, headers=bearer(secret))
    assert_envelope(too_big, 429, "rate_limit_exceeded")
    ok = gw.post(
        "/v1/chat/completions", json={**CHAT, "max_tokens": 90, "stop": ["the"]}, headers=bearer(secret)
    )
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit-tokens"] == "100"
    used = ok.json()["usage"]["total_tokens"]
    # The unused part of the 90-token reservation was refunded: a second request fits.
    again = gw.post("/v1/chat/completions", json={**CHAT, "max_tokens": 50}, headers=bearer(secret))
    assert again.status_code == 200, (used, again.text)
    assert int(again.headers["x-ratelimit-remaining-tokens"]) <= 100 - used


def test_concurrency_limit(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("conc", max_concurrent=1)
    engine = gw.app.state.registry.get("fake-chat", object)  # type: ignore[attr-defined]
    engine.token_delay_s = 0.05
    slow = threading.Thread(
        target=gw.post,
        args=("/v1/chat/completions",),
        kwargs={"json": {**CHAT, "max_tokens": 30}, "headers": bearer(secret)},
    )
    slow.start()
    deadline = time.monotonic() + 5
    while engine.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    error = assert_envelope(
        gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret)), 429, "rate_limit_exceeded"
    )
    assert "concurrent" in str(error["message"])
    slow.join()
    engine.token_delay_s = 0
    assert gw.post("/v1/chat/completions", json=CHAT, headers=bearer(secret)).status_code == 200


def test_monthly_budget_is_insufficient_quota(gw: TestClient, make_key: MakeKey) -> None:
    secret = make_key("budget", monthly_tokens=30)
    first = gw.post("/v1/chat/completions", json={**CHAT, "max_tokens": 10}, headers=bearer(secret))
    assert first.status_code == 200
    used = first.json()["usage"]["total_tokens"]
    flush_ledger(gw)
    # The next request's worst case no longer fits in what remains.
    over = gw.post("/v1/chat/completions", json={**CHAT, "max_tokens": 30 - used}, headers=bearer(secret))
    error = assert_envelope(over, 429, "insufficient_quota")
    assert "monthly budget" in str(error["message"])
    assert int(over.headers["retry-after"]) > 0
    usage = gw.get("/v1/usage", headers=bearer(secret)).json()
    assert usage["budget"]["used_this_month"] == used
    assert usage["budget"]["remaining"] == 30 - used
