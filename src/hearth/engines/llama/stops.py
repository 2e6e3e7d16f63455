"""Stop strings on a text stream: never emit a stop string, nor text that may start one.

Text arrives in pieces. Any tail of the unsent text that is a prefix of some stop string is held
back until later text settles it; a complete stop string ends the stream with the text before
it. Because nothing that could begin a stop string is ever sent, a match can only start inside
the held-back tail, so checking ``held + new`` is enough.
"""

from __future__ import annotations


class StopFilter:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the stream

    def push(self, text: str) -> str:
        """Text that is safe to emit now; sets ``stopped`` when a stop string completes."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        held = self._held + text
        hits = [(i, s) for s in self._stops if (i := held.find(s)) >= 0]
        if hits:
            cut, self.matched = min(hits, key=lambda hit: hit[0])
            self._held = ""
            self.stopped = True
            return held[:cut]
        keep = self._undecided_tail(held)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def flush(self) -> str:
        """At the end of the stream (not by a stop string) the held tail was not a stop after all."""
        held, self._held = self._held, ""
        return held

    def _undecided_tail(self, text: str) -> int:
        for size in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self._stops):
                return size
        return 0
