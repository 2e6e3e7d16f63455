"""Redis stops: limits fail closed (503) by default, or fail open to each replica's own windows
(HEARTH_LIMITS_FAIL_OPEN) and go back to the shared ones when Redis is back."""

from __future__ import annotations

import asyncio

import pytest

from hearth.errors import NotReady, RateLimited
from hearth.gateway.limits import Admission, FailOpenLimiter, Limiter
from tests.gateway.test_limits_shared import _key, _no_usage
from tests.helpers.services import ThrowawayRedis


async def _admitted(limiter: Limiter, admission: Admission) -> bool:
    try:
        await limiter.admit(admission)
    except RateLimited:
        return False
    return True


def test_closed_refuses_and_open_keeps_each_keys_limits_per_replica() -> None:
    redis = ThrowawayRedis().start()

    async def scenario() -> None:
        closed, open_ = Limiter(redis.url, _no_usage), FailOpenLimiter(redis.url, _no_usage)
        key = _key(rpm=3, max_concurrent=2, tpm=1000)
        try:
            first = Admission(key)
            assert await _admitted(open_, first) and not first.slot_local  # shared while Redis answers
            await open_.reserve_tokens(first, 100)
            redis.stop()
            assert await closed.healthy() is False and await open_.healthy() is True
            with pytest.raises(NotReady):
                await closed.admit(Admission(key))
            # Open: the replica's own windows, from zero, with the key's own limits.
            held = [Admission(key) for _ in range(3)]
            outcomes = [await _admitted(open_, a) for a in held]
            assert outcomes == [True, True, False], "max_concurrent 2 on this replica alone"
            assert held[0].slot_local and held[0].tokens_local
            await open_.reserve_tokens(held[0], 900)
            with pytest.raises(RateLimited):
                await open_.reserve_tokens(held[1], 200)  # tpm 1000 in the local window
            for admission in (first, *held[:2]):
                await open_.finish(admission, 50)  # releases go where each was taken, quietly
            # Slots are free again, but the three tries above were this minute's rpm 3 here.
            assert not await _admitted(open_, Admission(key)), "rpm 3 in the local window"
            redis.start()
            back = Admission(_key(rpm=3))
            assert await _admitted(open_, back) and not back.slot_local, "shared again"
        finally:
            await closed.close()
            await open_.close()

    try:
        asyncio.run(scenario())
    finally:
        redis.stop()
