"""Shadow traffic: a copy of a live chat, answered by a candidate model off the request path.

The live answer goes to the caller as usual. Once it is complete, a copy of the request is
queued for the shadow model; one worker answers the queue (so shadows never compete with each
other), and when the bounded queue is full the copy is dropped and counted instead of waiting.
Each shadow answer is compared with the live one (exact match, and the F1 overlap of their
words) and written to the ledger as a row of its own: no key, so it never counts against the
caller's limits or budget, with ``shadow_of`` naming the live request.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hearth.gateway.call import Call
from hearth.inference.types import ChatRequest

log = logging.getLogger("hearth.shadow")
_WORDS = re.compile(r"\w+", re.UNICODE)


def agreement(live: str, shadow: str) -> tuple[bool, float]:
    """Exact match (ignoring surrounding space) and the F1 overlap of the two answers' words."""
    exact = live.strip() == shadow.strip()
    a = Counter(w.lower() for w in _WORDS.findall(live))
    b = Counter(w.lower() for w in _WORDS.findall(shadow))
    if not a and not b:
        return exact, 1.0
    common = sum((a & b).values())
    if not common:
        return exact, 0.0
    precision, recall = common / sum(b.values()), common / sum(a.values())
    return exact, 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class ShadowJob:
    live: Call
    alias: str
    shadow_model: str
    request: ChatRequest
    live_text: str


@dataclass(frozen=True)
class ShadowOutcome:
    alias: str
    shadow_model: str
    outcome: str  # "compared", "dropped" or "failed"
    exact: bool | None = None
    overlap: float | None = None
    latency_s: float | None = None


Execute = Callable[[ShadowJob], Awaitable[ShadowOutcome]]


class ShadowRunner:
    """The bounded queue of shadow copies, answered one at a time by ``run``'s executor
    (the gateway's ``run_shadow``); observers hear every outcome, dropped copies included."""

    def __init__(self, max_queue: int = 16) -> None:
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(max_queue)
        self.observers: list[Callable[[ShadowOutcome], None]] = []
        self.dropped = 0

    def offer(self, job: ShadowJob) -> bool:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            self._tell(ShadowOutcome(job.alias, job.shadow_model, "dropped"))
            return False
        return True

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def run(self, execute: Execute) -> None:
        while True:
            job = await self._queue.get()
            try:
                self._tell(await execute(job))
            except asyncio.CancelledError:
                raise
            except Exception:  # a shadow must never take the worker down
                log.exception("shadow request failed")

    def _tell(self, outcome: ShadowOutcome) -> None:
        for observe in self.observers:
            observe(outcome)
