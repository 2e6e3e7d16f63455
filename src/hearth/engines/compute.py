"""Turns on the CPU: one forward pass at a time, across every engine in the process, in arrival order.

llama.cpp's ggml thread pool and torch each size their thread team to the machine's cores, and
both wait at their barriers by spinning. Run side by side on 2 cores, a chat decode and an
embedding batch put four spinning threads on two CPUs: each barrier then waits for a thread that
is not running, and both loads slow to a crawl (measured: their throughputs, as fractions of each
alone, added up to ~0.66). Taking turns gives each pass every core for its short run, and a FIFO
ticket keeps either side from starving the other: a decode step and an embedding batch each last
milliseconds, so a turn is never long.

``parallel`` mode (``HEARTH_COMPUTE_SHARING=parallel``) turns this off, for machines with cores
to spare for every engine's threads. The app builds one ``ComputeTurns`` and hands it to every
engine through their ``EngineContext``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ComputeTurns:
    """A fair (first come, first served) lock around forward passes."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._now_serving = 0
        self.turns = 0  # passes run under the lock: a test's evidence that engines take turns

    @contextmanager
    def turn(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._now_serving:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._now_serving += 1
                self.turns += 1
                self._cond.notify_all()
