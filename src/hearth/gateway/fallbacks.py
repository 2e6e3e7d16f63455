"""Fallbacks: other models, local or upstream, that serve a request its model cannot.

A model's ``fallbacks`` (its config) are tried in order when it is down or full: it did not load
or is unloading, its queue or every upstream endpoint is full or unreachable, or its server
failed before the first token. A refusal that is the caller's (a bad request, the key's own
limits) is never retried elsewhere. The call keeps the name it asked for; the model that served
is its variant (``x-hearth-variant``, the usage row).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hearth.errors import EngineFailure, HearthError, Overloaded, RateLimited
from hearth.gateway.call import Call
from hearth.gateway.resolver import Resolver

log = logging.getLogger("hearth.gateway")
T = TypeVar("T")
# One try: the model's name, and whether it is a fallback; what it serves.
Attempt = Callable[[str, bool], Awaitable[T]]


def worth_falling_back(error: HearthError) -> bool:
    if isinstance(error, RateLimited):
        return error.reason == "upstream_rate_limited"  # the upstream is full, not the key
    return isinstance(error, Overloaded | EngineFailure)


async def with_fallbacks(resolver: Resolver, call: Call, name: str, attempt: Attempt[T]) -> T:
    try:
        return await attempt(name, False)
    except HearthError as failure:
        if not worth_falling_back(failure):
            raise
        failed, last = call.resolution.tried, failure
        for fallback in resolver.fallbacks(call):
            log.info("%s: %s could not serve (%s); trying %s", call.request_id, failed, last.label, fallback)
            call.metering.begin_again()
            try:
                return await attempt(fallback, True)
            except HearthError as again:
                if not worth_falling_back(again):
                    raise
                last = again
        raise last from failure if last is not failure else failure.__cause__
