"""The fair queue engines admit from: priority first, then keys in proportion to their weights."""

from __future__ import annotations

from hearth.engines.fair_queue import FairQueue, Ticket, fair_shares


def _drain(queue: FairQueue[str]) -> list[str]:
    return [queue.pop() for _ in range(len(queue))]


def test_a_key_that_sends_most_does_not_get_most() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(6):
        queue.push(f"flood{i}", Ticket("flood"))
    queue.push("quiet0", Ticket("quiet"))
    queue.push("quiet1", Ticket("quiet"))
    order = _drain(queue)
    assert order.index("quiet0") <= 1 and order.index("quiet1") <= 3, order
    assert [x for x in order if x.startswith("flood")] == [f"flood{i}" for i in range(6)], "FIFO within a key"


def test_weights_priorities_and_idle_time() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(6):
        queue.push(f"a{i}", Ticket("a", weight=2.0))
        queue.push(f"b{i}", Ticket("b", weight=1.0))
    first_six = _drain(queue)[:6]
    assert sum(x.startswith("a") for x in first_six) == 4, "twice the weight, twice the service"

    queue.push("batch", Ticket("a", priority=20))
    queue.push("interactive", Ticket("b", priority=0))
    assert queue.most_urgent() == 0 and queue.pop() == "interactive" and queue.pop() == "batch"

    # A key idle while another was served does not bank that time as credit for a burst: it
    # comes back level with the last admission (and wins that one tie).
    for i in range(10):
        queue.push(f"busy{i}", Ticket("busy"))
    for _ in range(8):
        queue.pop()
    for i in range(4):
        queue.push(f"late{i}", Ticket("late"))
    first_four = _drain(queue)[:4]
    assert "busy8" in first_four and sum(x.startswith("late") for x in first_four) <= 3, first_four


def test_remove_front_and_shares() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("x", Ticket("k"))
    queue.push("y", Ticket("k"))
    queue.push("resumed", Ticket("k"), front=True)
    assert queue.remove("x") and not queue.remove("x")
    assert queue.ticket("y") == Ticket("k")
    assert list(queue) == ["resumed", "y"] and queue.waiting_tenants() == {"k": 1.0}
    assert _drain(queue) == ["resumed", "y"] and not queue and queue.peek() is None
    assert fair_shares(8, {"a": 1.0, "b": 3.0}) == {"a": 2.0, "b": 6.0}
