"""Fair admission: waiting work queued by tenant, served by priority, then fairly across tenants.

Engines used to admit first come, first served, so under overload whoever sent most got most: a
key with 64 streams in flight pushed a key with one to the back of a 64-deep queue. Here every
tenant (an API key) has its own queue. The next item is taken from the most urgent priority
class present (lower values first, as vLLM's ``priority``), and within it from the tenant with
the least *virtual service*: each admission adds ``1 / weight`` to its tenant's count, so
tenants are served in proportion to their weights whatever each sends (start-time fair
queueing, with requests as the unit). A tenant that was idle comes back at the current minimum,
so idle time is not banked as credit for a later burst.

``share`` says how many of ``capacity`` running places a tenant deserves while these tenants
compete; an engine that runs out of places preempts from the tenant furthest above its share
(see the llama.cpp scheduler). Not thread-safe: the owner holds its own lock.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Ticket:
    """Who a piece of work is for, and how urgent it is."""

    tenant: str = ""
    priority: int = 0
    weight: float = 1.0


# The ticket of the request being served, for engines whose calls carry no ticket of their own
# (embeddings, vision: the micro-batcher reads it). Tasks the request starts inherit it.
ADMISSION: ContextVar[Ticket | None] = ContextVar("hearth_admission", default=None)


@contextlib.contextmanager
def admitted_as(ticket: Ticket | None) -> Iterator[None]:
    """Engine calls made inside queue under ``ticket`` (None: first come, first served)."""
    token = ADMISSION.set(ticket)
    try:
        yield
    finally:
        ADMISSION.reset(token)


@dataclass
class _Tenant(Generic[T]):
    weight: float
    served: float = 0.0  # virtual service: admissions divided by weight
    admitted: int = 0  # admissions: on a tie, the tenant served less often goes first
    queues: dict[int, collections.deque[T]] = field(default_factory=dict)

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant[T]] = {}
        self._tickets: dict[int, Ticket] = {}  # id(item) -> its ticket
        self._size = 0
        self._clock = 0.0  # virtual time: the service count at which the last admission started

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[T]:
        for tenant in self._tenants.values():
            for queue in tenant.queues.values():
                yield from queue

    def push(self, item: T, ticket: Ticket, *, front: bool = False) -> None:
        """Queue ``item``; ``front``: it was running and was preempted, so it goes first again."""
        tenant = self._tenants.get(ticket.tenant)
        if tenant is None:
            tenant = self._tenants[ticket.tenant] = _Tenant(ticket.weight)
        if tenant.waiting() == 0:  # (re)joining: level with the current virtual time
            tenant.served = max(tenant.served, self._clock)
        tenant.weight = ticket.weight
        queue = tenant.queues.setdefault(ticket.priority, collections.deque())
        if front:
            queue.appendleft(item)
        else:
            queue.append(item)
        self._tickets[id(item)] = ticket
        self._size += 1

    def peek(self) -> T | None:
        found = self._next()
        return None if found is None else found[1].queues[found[0]][0]

    def pop(self) -> T:
        found = self._next()
        if found is None:
            raise IndexError("pop from an empty FairQueue")
        priority, tenant = found
        item = tenant.queues[priority].popleft()
        self._charge(tenant)
        self._forget(item, tenant, priority)
        return item

    def take(self, item: T) -> None:
        """Admit ``item`` out of turn (it took a preempted place): its tenant is charged as by pop."""
        ticket = self._tickets[id(item)]
        tenant = self._tenants[ticket.tenant]
        self.remove(item)
        self._charge(tenant)

    def remove(self, item: T) -> bool:
        ticket = self._tickets.get(id(item))
        if ticket is None:
            return False
        tenant = self._tenants[ticket.tenant]
        queue = tenant.queues.get(ticket.priority)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        self._forget(item, tenant, ticket.priority)
        return True

    def ticket(self, item: T) -> Ticket | None:
        return self._tickets.get(id(item))

    def most_urgent(self) -> int | None:
        """The most urgent priority waiting (lowest value), or None when nothing waits."""
        return min((p for t in self._tenants.values() for p, q in t.queues.items() if q), default=None)

    def waiting_tenants(self) -> dict[str, float]:
        """The tenants with work waiting, and their weights."""
        return {name: t.weight for name, t in self._tenants.items() if t.waiting()}

    def _next(self) -> tuple[int, _Tenant[T]] | None:
        urgent = self.most_urgent()
        if urgent is None:
            return None
        candidates = [t for t in self._tenants.values() if t.queues.get(urgent)]
        # A tenant that comes back starts level with the busiest, and wins the tie: a key with
        # many requests running and queued must not keep one that just arrived waiting.
        return urgent, min(candidates, key=lambda t: (t.served, t.admitted))

    def _charge(self, tenant: _Tenant[T]) -> None:
        self._clock = max(self._clock, tenant.served)
        tenant.served += 1.0 / max(tenant.weight, 1e-6)
        tenant.admitted += 1

    def _forget(self, item: T, tenant: _Tenant[T], priority: int) -> None:
        self._tickets.pop(id(item), None)
        self._size -= 1
        if not tenant.queues[priority]:
            del tenant.queues[priority]


def fair_shares(capacity: int, weights: dict[str, float]) -> dict[str, float]:
    """Each competing tenant's share of ``capacity`` running places, in proportion to weight."""
    total = sum(weights.values())
    return {name: capacity * weight / total for name, weight in weights.items()} if total > 0 else {}
