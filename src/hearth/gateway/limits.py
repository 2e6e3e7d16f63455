"""Per-key limits: requests/min, tokens/min, concurrent requests and a monthly token budget.

Request and token windows use the ``limits`` library: in-process memory by default, Redis when
``HEARTH_REDIS_URL`` is set, so every replica shares one count. The tokens window reserves a
request's worst case (prompt + max_tokens) up front and refunds the unused part at the end.
Concurrency is a shared counter (Redis INCR/DECR with a safety TTL, or an in-process dict).
The monthly budget is checked against the usage ledger, the durable source of truth, plus the
tokens this process has reserved but not yet written there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from limits import RateLimitItemPerMinute
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from hearth.errors import NotReady, QuotaExceeded, RateLimited, RateLimitState
from hearth.store.keys import ApiKeyView

log = logging.getLogger("hearth.limits")

CONCURRENCY_TTL_S = 900  # a crashed replica's slots expire instead of leaking forever


@dataclass
class Admission:
    """What one request holds while it runs; ``finish`` gives it all back exactly once."""

    key: ApiKeyView
    state: RateLimitState = field(default_factory=RateLimitState)
    reserved_tokens: int = 0
    holds_slot: bool = False
    finished: bool = False
    # Fail-open only: the shared store was down, so this replica's own windows hold the slot or
    # the reserved tokens (FailOpenLimiter).
    slot_local: bool = False
    tokens_local: bool = False


def _ident(key: ApiKeyView) -> str:
    # Key ids repeat across databases that share one Redis; the creation time tells them apart.
    return f"{key.id}-{int(key.created_at.timestamp() * 1000)}"


class Limiter:
    def __init__(
        self,
        redis_url: str | None,
        month_usage: Callable[[int], Awaitable[int]],
    ) -> None:
        if redis_url:
            url = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self._storage = cast(
                AsyncStorage, storage_from_string(url, implementation="redispy", key_prefix="hearth")
            )
            import redis.asyncio as aioredis

            self._redis: aioredis.Redis | None = aioredis.from_url(redis_url.removeprefix("async+"))
        else:
            self._storage = cast(AsyncStorage, storage_from_string("async+memory://"))
            self._redis = None
        # Sliding-window counters are O(1) per check; a moving window keeps one entry per
        # request, so a key allowed thousands per minute would scan thousands on every call.
        self._requests = SlidingWindowCounterRateLimiter(self._storage)
        self._tokens = FixedWindowRateLimiter(self._storage)
        self._local_slots: dict[str, int] = defaultdict(int)
        self._in_flight_tokens: dict[int, int] = defaultdict(int)
        self._month_usage = month_usage
        self.shared = redis_url is not None

    async def healthy(self) -> bool:
        try:
            return bool(await self._storage.check())
        except Exception:
            return False

    async def admit(self, admission: Admission) -> None:
        """Count one request against rpm and take a concurrency slot, or raise 429.

        The window's numbers land on ``admission.state`` even when refused, so a 429 has them too.
        """
        key = admission.key
        try:
            if key.rpm:
                item = RateLimitItemPerMinute(key.rpm)
                allowed = await self._requests.hit(item, f"rpm/{_ident(key)}")
                stats = await self._requests.get_window_stats(item, f"rpm/{_ident(key)}")
                retry = max(0.0, stats.reset_time - time.time())
                admission.state = admission.state.merge(
                    RateLimitState(
                        requests_limit=key.rpm, requests_remaining=stats.remaining, requests_reset_s=retry
                    )
                )
                if not allowed:
                    raise RateLimited(
                        f"rate limit reached: {key.rpm} requests per minute for this key", retry_after=retry
                    )
            if key.max_concurrent:
                if not await self._take_slot(_ident(key), key.max_concurrent):
                    raise RateLimited(
                        f"too many concurrent requests: this key allows {key.max_concurrent} at once",
                        retry_after=1,
                    )
                admission.holds_slot = True
            if key.monthly_tokens and await self._used_this_month(key.id) >= key.monthly_tokens:
                raise QuotaExceeded(
                    f"this key has used its monthly budget of {key.monthly_tokens} tokens",
                    retry_after=_seconds_to_next_month(),
                )
        except (RateLimited, QuotaExceeded) as exc:
            await self.finish(admission, 0)
            exc.retry_after = exc.retry_after or 1
            exc.limits = admission.state
            raise
        except Exception as exc:  # the shared store is down: refuse cleanly, never crash
            await self.finish(admission, 0)
            raise NotReady("the rate-limit store is unavailable; try again shortly", retry_after=2) from exc

    async def reserve_tokens(self, admission: Admission, tokens: int) -> None:
        """Reserve a request's worst-case tokens against tpm and the monthly budget (in place of
        what it reserved before: a request that falls back to another model reserves again)."""
        key = admission.key
        await self._refund(admission, 0)
        try:
            if key.monthly_tokens:
                used = await self._used_this_month(key.id)
                if used + tokens > key.monthly_tokens:
                    raise QuotaExceeded(
                        f"this request may use up to {tokens} tokens, but only "
                        f"{max(0, key.monthly_tokens - used)} remain of this key's monthly budget "
                        f"of {key.monthly_tokens}",
                        retry_after=_seconds_to_next_month(),
                    )
            if key.tpm:
                item = RateLimitItemPerMinute(key.tpm)
                allowed = await self._tokens.hit(item, f"tpm/{_ident(key)}", cost=tokens)
                if not allowed:  # a refused fixed-window hit still counted: take it back
                    await self._storage.incr(
                        item.key_for(f"tpm/{_ident(key)}"), item.get_expiry(), amount=-tokens
                    )
                stats = await self._tokens.get_window_stats(item, f"tpm/{_ident(key)}")
                retry = max(0.0, stats.reset_time - time.time())
                admission.state = admission.state.merge(
                    RateLimitState(
                        tokens_limit=key.tpm, tokens_remaining=max(0, stats.remaining), tokens_reset_s=retry
                    )
                )
                if not allowed:
                    raise RateLimited(
                        f"rate limit reached: this request needs up to {tokens} tokens and this key "
                        f"allows {key.tpm} tokens per minute",
                        retry_after=retry or 1,
                    )
        except (RateLimited, QuotaExceeded) as exc:
            exc.limits = admission.state
            raise
        except Exception as exc:
            raise NotReady("the rate-limit store is unavailable; try again shortly", retry_after=2) from exc
        admission.reserved_tokens = tokens
        self._in_flight_tokens[key.id] += tokens

    async def finish(self, admission: Admission, used_tokens: int) -> None:
        """Release the slot and refund unused reserved tokens; safe to call more than once."""
        if admission.finished:
            return
        admission.finished = True
        await self._refund(admission, used_tokens)
        if admission.holds_slot:
            await _quietly(self._release_slot(_ident(admission.key)))

    async def _refund(self, admission: Admission, used_tokens: int) -> None:
        """Settle the reservation with what was used: give back the rest, or charge what went
        beyond it (an upstream's prompt is reserved as an estimate, and counted exactly after)."""
        key, reserved = admission.key, admission.reserved_tokens
        if not reserved:
            return
        admission.reserved_tokens = 0
        self._in_flight_tokens[key.id] -= reserved
        unused = reserved - used_tokens
        if key.tpm and unused:
            item = RateLimitItemPerMinute(key.tpm)
            await _quietly(
                self._storage.incr(item.key_for(f"tpm/{_ident(key)}"), item.get_expiry(), amount=-unused)
            )

    async def _used_this_month(self, key_id: int) -> int:
        return await self._month_usage(key_id) + self._in_flight_tokens[key_id]

    async def _take_slot(self, ident: str, limit: int) -> bool:
        if self._redis is None:
            if self._local_slots[ident] >= limit:
                return False
            self._local_slots[ident] += 1
            return True
        name = f"hearth:concurrency:{ident}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, CONCURRENCY_TTL_S)
            count, _ = await pipe.execute()
        if int(count) > limit:
            await self._redis.decr(name)
            return False
        return True

    async def _release_slot(self, ident: str) -> None:
        if self._redis is None:
            self._local_slots[ident] = max(0, self._local_slots[ident] - 1)
        else:
            await self._redis.decr(f"hearth:concurrency:{ident}")

    async def close(self) -> None:
        if self._redis is not None:
            await _quietly(self._redis.aclose())


class FailOpenLimiter(Limiter):
    """Shared limits while Redis answers; while it does not, each replica enforces every key's
    limits on its own (in-process windows, so a key may get up to one full allowance per
    replica) instead of refusing every request with 503 (``HEARTH_LIMITS_FAIL_OPEN``)."""

    def __init__(self, redis_url: str, month_usage: Callable[[int], Awaitable[int]]) -> None:
        super().__init__(redis_url, month_usage)
        self._local = Limiter(None, month_usage)
        self._warned_at = 0.0

    async def healthy(self) -> bool:
        return True  # the shared store's absence does not stop this replica serving

    async def admit(self, admission: Admission) -> None:
        try:
            await super().admit(admission)
        except NotReady:
            self._warn()
            admission.finished, admission.holds_slot = False, False
            admission.slot_local = admission.tokens_local = True
            await self._local.admit(admission)

    async def reserve_tokens(self, admission: Admission, tokens: int) -> None:
        if not admission.tokens_local:
            try:
                await super().reserve_tokens(admission, tokens)
                return
            except NotReady:
                self._warn()
                admission.tokens_local = True
        await self._local.reserve_tokens(admission, tokens)

    async def finish(self, admission: Admission, used_tokens: int) -> None:
        if admission.finished:
            return
        admission.finished = True
        await (self._local if admission.tokens_local else self)._refund(admission, used_tokens)
        if admission.holds_slot:
            owner = self._local if admission.slot_local else self
            await _quietly(owner._release_slot(_ident(admission.key)))

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning(
                "the shared rate-limit store is unavailable: enforcing limits per replica (fail open)"
            )


async def _quietly(work: Awaitable[object]) -> None:
    # Releases must never turn a finished request into an error; a lost decrement only
    # leaves a slot held until its TTL.
    try:
        await asyncio.wait_for(work, timeout=2)
    except Exception:
        return


def _seconds_to_next_month() -> float:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return (following - now).total_seconds()
