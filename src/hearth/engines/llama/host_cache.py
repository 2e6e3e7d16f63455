"""KV state kept in host memory past the slots, so a conversation can come back without a re-prefill.

A slot keeps its last sequence's cells until another conversation takes it. When agents
outnumber the slots, each conversation's next turn used to find its slot overwritten and
recompute its whole history. Before a slot's cells are overwritten, the scheduler copies them
out (``llama_state_seq_get_data``) into this store; when a later prompt begins with one of the
stored token lists, the cells are copied back into a slot (``llama_state_seq_set_data``): a
memory copy of milliseconds where prefilling the same tokens takes seconds on a CPU.

Agents share a long prefix (instructions and tool schemas), so storing each conversation whole
would store that prefix once per conversation. With a unified KV pool an entry instead holds
only the cells past a *base*: a prefix that another slot holds, kept once in the store as an
entry of its own. The range is copied out through a scratch sequence id (``seq_cp`` of the
range, then ``get_data``); on the way back the base comes from a slot that holds it (shared
with ``seq_cp``, nothing copied) or from its own entry, and the stored range is added on top.

The store is bounded by the operator's budget (the ``host_cache_mb`` option) and evicts the
least recently used entry first. A conversation's entry moves back into a slot when used (the
slot then holds it, and saves it again, longer, when it is overwritten), so nothing is kept
twice; base entries stay while anything uses them. Every call runs on the scheduler thread,
the only one that touches the llama.cpp context.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp

from hearth.engines.llama.sequence import Slot, common_prefix

log = logging.getLogger("hearth.llama.host_cache")

MIN_SAVE = 64  # tokens a slot would lose: fewer are cheaper to recompute than to keep
MIN_GAIN = 64  # tokens a stored state must add over what the slots already offer
MIN_BASE = 256  # a shared prefix shorter than this is stored with each conversation


@dataclass(eq=False)
class HostEntry:
    tokens: list[int]  # the whole history the entry stands for, at positions 0..len-1
    base: int  # positions [0, base) are not in ``state``: they come from a slot or a base entry
    state: Any  # a ctypes uint8 array: the cells of positions [base, len)
    pos_min: int  # the first position still cached (sliding-window layers drop older ones)
    last_used: float

    @property
    def size(self) -> int:
        return len(self.state)


class HostCache:
    def __init__(self, ctx: Any, budget_bytes: int, n_swa: int, scratch_seq: int | None) -> None:
        """``scratch_seq``: a sequence id no slot uses, for copying ranges (unified KV only)."""
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self.budget = max(0, budget_bytes)
        self._n_swa = n_swa
        self._scratch = scratch_seq
        self._entries: list[HostEntry] = []
        self.bytes = 0
        self.saves = 0
        self.restores = 0
        self.restored_tokens = 0

    # ---- saving ----------------------------------------------------------------------------

    def save(self, slot: Slot, others: Sequence[Slot], min_tokens: int = MIN_SAVE) -> HostEntry | None:
        """Copy ``slot``'s cells out, unless a stored entry already covers its history; returns
        the entry that holds them (None when they were not kept)."""
        tokens = slot.kv
        if self.budget == 0 or len(tokens) < min_tokens:
            return None
        for entry in self._entries:
            if common_prefix(entry.tokens, tokens) == len(tokens):  # the same or a longer history
                entry.last_used = time.monotonic()
                return entry
        base = self._base_for(tokens, others)
        if base and not self._has_base(tokens, base):
            self._store(slot.seq_id, tokens[:base], 0)  # the shared prefix, once
        if base and not self._has_base(tokens, base):
            base = 0  # no room to keep the prefix apart: keep the conversation whole
        # An older, shorter state of the same conversation is now redundant.
        self._drop([e for e in self._entries if e.base and common_prefix(e.tokens, tokens) == len(e.tokens)])
        return self._store(slot.seq_id, tokens, base)

    def _base_for(self, tokens: list[int], others: Sequence[Slot]) -> int:
        """The longest prefix of ``tokens`` another slot holds, if worth keeping apart."""
        if self._scratch is None:
            return 0
        shared = max((common_prefix(other.kv, tokens) for other in others), default=0)
        shared = max(shared, *(self._covered(e, tokens) for e in self._entries if e.base == 0), 0)
        return shared if MIN_BASE <= shared <= len(tokens) - MIN_SAVE else 0

    def _store(self, seq_id: int, tokens: list[int], base: int) -> HostEntry | None:
        source = seq_id
        if base or len(tokens) < self._held(seq_id):  # copy the range out through the scratch id
            assert self._scratch is not None
            source = self._scratch
            llama_cpp.llama_memory_seq_rm(self._mem, source, -1, -1)
            llama_cpp.llama_memory_seq_cp(self._mem, seq_id, source, base, len(tokens))
        try:
            size = int(llama_cpp.llama_state_seq_get_size(self._ctx, source))
            if size <= 0 or size > self.budget:
                return None
            self._make_room(size)
            state = (ctypes.c_uint8 * size)()
            written = int(llama_cpp.llama_state_seq_get_data(self._ctx, state, size, source))
            pos_min = int(llama_cpp.llama_memory_seq_pos_min(self._mem, source))
        finally:
            if source != seq_id:
                llama_cpp.llama_memory_seq_rm(self._mem, source, -1, -1)
        if written != size:
            log.warning("could not copy a sequence's KV state out (%d of %d bytes)", written, size)
            return None
        entry = HostEntry(list(tokens), base, state, pos_min, time.monotonic())
        self._entries.append(entry)
        self.bytes += size
        self.saves += 1
        return entry

    def _held(self, seq_id: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self._mem, seq_id)) + 1

    # ---- finding and restoring -------------------------------------------------------------

    def best(self, tokens: list[int], at_least: int, slots: Sequence[Slot]) -> tuple[HostEntry, int] | None:
        """The restorable entry sharing the longest usable prefix with ``tokens``, if longer than
        ``at_least + MIN_GAIN``; the usable length leaves one prompt token to evaluate."""
        found: tuple[HostEntry, int] | None = None
        longest = at_least + MIN_GAIN - 1
        for entry in self._entries:
            shared = min(common_prefix(entry.tokens, tokens), len(tokens) - 1)
            if shared > longest and self._window_ok(entry, shared) and self._restorable(entry, slots):
                found, longest = (entry, shared), shared
        return found

    def resume_point(self, entry: HostEntry, tokens: list[int], slots: Sequence[Slot]) -> int:
        """How much of ``tokens`` a preempted sequence's own ``entry`` gives back (0: nothing,
        it was evicted); no minimum gain applies, the sequence's cells are its own."""
        if entry not in self._entries or not self._restorable(entry, slots):
            return 0
        shared = min(common_prefix(entry.tokens, tokens), len(tokens) - 1)
        return shared if shared > 0 and self._window_ok(entry, shared) else 0

    def restore(self, entry: HostEntry, slot: Slot, slots: Sequence[Slot]) -> bool:
        """Fill ``slot`` with ``entry``'s history; the entry leaves the store. False (the slot
        then empty) when the KV pool has no room for its cells now: the entry stays."""
        target = slot.seq_id
        ok = self._set(entry, target) if entry.base == 0 else self._restore_on_base(entry, slot, slots)
        if not ok:
            llama_cpp.llama_memory_seq_rm(self._mem, target, -1, -1)
            entry.last_used = time.monotonic()
            return False
        self._drop([entry])
        self.restores += 1
        self.restored_tokens += len(entry.tokens)
        return True

    def _restore_on_base(self, entry: HostEntry, slot: Slot, slots: Sequence[Slot]) -> bool:
        assert self._scratch is not None
        if not self._set(entry, self._scratch):  # the range first: set_data empties its sequence
            return False
        try:
            donor = next((s for s in slots if common_prefix(s.kv, entry.tokens) >= entry.base), None)
            if donor is slot:
                llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, entry.base, -1)
            elif donor is not None:
                llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                llama_cpp.llama_memory_seq_cp(self._mem, donor.seq_id, slot.seq_id, -1, entry.base)
            else:
                base = next(
                    e for e in self._entries if e.base == 0 and self._covered(e, entry.tokens) >= entry.base
                )
                if not self._set(base, slot.seq_id):
                    return False
                base.last_used = time.monotonic()
                llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, entry.base, -1)
            llama_cpp.llama_memory_seq_cp(self._mem, self._scratch, slot.seq_id, -1, -1)
            return True
        finally:
            llama_cpp.llama_memory_seq_rm(self._mem, self._scratch, -1, -1)

    def _set(self, entry: HostEntry, seq_id: int) -> bool:
        return int(llama_cpp.llama_state_seq_set_data(self._ctx, entry.state, entry.size, seq_id)) > 0

    def _restorable(self, entry: HostEntry, slots: Sequence[Slot]) -> bool:
        return entry.base == 0 or self._has_base(entry.tokens, entry.base, slots)

    def _has_base(self, tokens: list[int], base: int, slots: Sequence[Slot] = ()) -> bool:
        if any(common_prefix(s.kv, tokens) >= base for s in slots):
            return True
        return any(e.base == 0 and self._covered(e, tokens) >= base for e in self._entries)

    @staticmethod
    def _covered(entry: HostEntry, tokens: list[int]) -> int:
        return common_prefix(entry.tokens, tokens)

    # ---- bookkeeping -----------------------------------------------------------------------

    def clear(self) -> None:
        self._drop(list(self._entries))

    def stats(self) -> dict[str, int]:
        return {
            "host_cache_bytes": self.bytes,
            "host_cache_entries": len(self._entries),
            "host_cache_tokens": sum(len(e.tokens) - e.base for e in self._entries),
            "host_cache_saves": self.saves,
            "host_cache_restores": self.restores,
            "host_cache_restored_tokens": self.restored_tokens,
        }

    def _window_ok(self, entry: HostEntry, shared: int) -> bool:
        # The rule the slots follow (Scheduler._swa_ok): the window before ``shared`` must be there.
        return self._n_swa <= 0 or 0 <= entry.pos_min <= max(0, shared - self._n_swa)

    def _make_room(self, size: int) -> None:
        for entry in sorted(self._entries, key=lambda e: e.last_used):
            if self.bytes + size <= self.budget:
                return
            self._drop([entry])

    def _drop(self, entries: list[HostEntry]) -> None:
        for entry in entries:
            if entry in self._entries:
                self._entries.remove(entry)
                self.bytes -= entry.size
