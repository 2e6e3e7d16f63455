"""Token and request windows shared through Redis: replicas together admit exactly the quota.

Each ``Limiter`` here stands for one replica (its own process-local state, one shared Redis),
and the key is new each run (a fresh creation time), so runs never share a window.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from hearth.errors import RateLimited
from hearth.gateway.limits import Admission, Limiter
from hearth.store.keys import ApiKeyView
from tests.helpers.services import redis_url


async def _no_usage(_key_id: int) -> int:
    return 0


def _key(**limits: int) -> ApiKeyView:
    created = datetime.fromtimestamp(random.randrange(10**9, 2 * 10**9) + random.random(), UTC)
    values: dict[str, int | None] = {"rpm": None, "tpm": None, "max_concurrent": None, "monthly_tokens": None}
    values.update(limits)
    return ApiKeyView(
        id=random.randrange(1, 10**6),
        name="shared",
        prefix="hk-test",
        models=None,
        expires_at=None,
        revoked_at=None,
        created_at=created,
        last_used_at=None,
        **values,
    )


async def _reserve(limiter: Limiter, key: ApiKeyView, tokens: int) -> bool:
    admission = Admission(key)
    try:
        await limiter.reserve_tokens(admission, tokens)
    except RateLimited:
        return False
    await limiter.finish(admission, tokens)  # all of it used: nothing refunded
    return True


def test_tokens_per_minute_are_one_window_across_replicas() -> None:
    async def scenario() -> tuple[list[bool], bool]:
        url = redis_url()
        replicas = [Limiter(url, _no_usage) for _ in range(3)]
        key = _key(tpm=1000)
        try:
            # 30 concurrent requests of 100 tokens each, spread over the replicas.
            results = await asyncio.gather(*(_reserve(replicas[i % 3], key, 100) for i in range(30)))
            # Refusals took their hits back: the window holds exactly the admitted 1000, so even
            # one more token is refused.
            return list(results), await _reserve(replicas[0], key, 1)
        finally:
            for limiter in replicas:
                await limiter.close()

    results, one_more = asyncio.run(scenario())
    assert results.count(True) == 10  # 10 x 100 = the quota; in-memory windows would admit 30
    assert not one_more


def test_unused_tokens_are_refunded_to_the_shared_window() -> None:
    async def scenario() -> list[bool]:
        url = redis_url()
        a, b = Limiter(url, _no_usage), Limiter(url, _no_usage)
        key = _key(tpm=300)
        try:
            first = Admission(key)
            await a.reserve_tokens(first, 300)  # worst case reserved on replica a...
            blocked = await _reserve(b, key, 50)  # ...so replica b has none left
            await a.finish(first, 100)  # a used only 100: 200 go back to the shared window
            return [blocked, await _reserve(b, key, 200), await _reserve(b, key, 1)]
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(scenario()) == [False, True, False]


def test_requests_per_minute_are_one_window_across_replicas() -> None:
    async def scenario() -> list[bool]:
        url = redis_url()
        replicas = [Limiter(url, _no_usage) for _ in range(3)]
        key = _key(rpm=7)

        async def one(limiter: Limiter) -> bool:
            admission = Admission(key)
            try:
                await limiter.admit(admission)
            except RateLimited:
                return False
            await limiter.finish(admission, 0)
            return True

        try:
            return list(await asyncio.gather(*(one(replicas[i % 3]) for i in range(21))))
        finally:
            for limiter in replicas:
                await limiter.close()

    assert asyncio.run(scenario()).count(True) == 7
