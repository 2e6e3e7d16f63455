"""Which queue a request waits in under overload: its key, its weight, its priority.

Priorities are vLLM's: an integer, lower served first. A key's class sets its default
(interactive 0, standard 10, batch 20); a request's own ``priority`` may only make it less
urgent than its key's class, never jump ahead of other keys' interactive work. The lines of a
batch job are batch class whatever their key's class (they run on idle capacity). Shadow copies
of live traffic come last of all: they use only what nothing else wants.
"""

from __future__ import annotations

from hearth.engines.fair_queue import Ticket
from hearth.gateway.call import Call

CLASS_PRIORITY = {"interactive": 0, "standard": 10, "batch": 20}
SHADOW_PRIORITY = 100


def ticket_for(call: Call, requested: int | None = None) -> Ticket:
    key = call.identity.key
    if call.resolution.shadow_of is not None:
        return Ticket(f"shadow:{call.resolution.shadow_of}", SHADOW_PRIORITY)
    floor = CLASS_PRIORITY.get(key.priority, 0) if key is not None else 0
    if call.identity.batch_id is not None:
        floor = max(floor, CLASS_PRIORITY["batch"])
    priority = floor if requested is None else max(floor, requested)
    tenant = f"key:{key.id}" if key is not None else ""
    return Ticket(tenant, priority, key.weight if key is not None else 1.0)
