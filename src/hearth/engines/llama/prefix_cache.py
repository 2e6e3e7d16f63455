"""Where a sequence's KV cells come from: slots, cells shared between slots, and the host cache.

Slots are llama.cpp sequence ids. A slot keeps the KV cells of its last sequence after it
finishes or is cancelled; that is the prefix cache. A new sequence takes a free slot (``place``):
one its prompt merely extends, else an empty one, else the least recently used; it keeps the
cells its prompt shares with that slot (``llama_memory_seq_rm`` past them) and prefills only the
rest, reported as ``cached_tokens``. When another slot, running or idle, holds a longer prefix,
its cells are shared instead (``llama_memory_seq_cp``, unified KV only): eight agents with one
instruction and tool prefix compute it once, which llama-server's per-slot prompt cache cannot
do, and agents that arrive together share it as soon as the first has computed it
(``share_late``). A slot's cells about to be overwritten are first copied to a bounded
host-memory cache, and a prompt that continues a stored conversation gets them back from there
(host_cache.py): conversations can outnumber the slots.

Sliding-window-attention layers (Gemma 3) only keep the last ``n_swa`` positions of a sequence,
so a prefix of length ``p`` is reusable only while the SWA cache still holds positions
``[p - n_swa, p)`` (``llama_memory_seq_pos_min <= p - n_swa``), the rule llama-server uses;
otherwise the prompt is evaluated in full. Everything here runs on the scheduler thread.
"""

from __future__ import annotations

import llama_cpp

from hearth.engines.llama.host_cache import MIN_SAVE, HostCache, HostEntry
from hearth.engines.llama.sequence import Runtime, Sequence, Slot, common_prefix

MIN_REUSE = 16  # tokens: shorter shared prefixes don't decide which slot's cache to overwrite


class PrefixCache:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._mem = llama_cpp.llama_get_memory(rt.ctx)
        self.slots = [Slot(i, []) for i in range(rt.slots)]
        self.host = HostCache(rt.ctx, rt.host_cache_bytes, rt.n_swa, rt.scratch_seq)
        self.shared_prefixes = 0  # admissions that shared another slot's cached prefix

    def place(self, seq: Sequence) -> tuple[Slot, int]:
        """A free slot for ``seq``, filled with as much of its tokens' cells as anything holds;
        returns the slot and how many of ``seq.tokens`` its cells already hold."""
        slot, reuse = self._pick_slot(seq)
        donor, shared = self._donor(seq.tokens, slot, reuse)
        stored = self.host.best(seq.tokens, max(reuse, shared), self.slots)
        if seq.parked is not None:  # preempted: its own cells wait in the host cache
            resumed = self.host.resume_point(seq.parked, seq.tokens, self.slots)
            if resumed > max(reuse, shared, stored[1] if stored else 0):
                stored = (seq.parked, resumed)
            seq.parked = None
        # What the chosen slot is about to lose goes to the host cache first.
        self.keep_in_host(slot, 0 if donor is not None or stored is not None else reuse)
        if stored is not None and self._restore(slot, stored[0]):
            reuse = stored[1]
        elif donor is not None:  # another slot holds a longer prefix: share its cells
            self._share(donor, slot, shared)
            reuse = shared
        elif stored is not None:  # the restore failed and emptied the slot
            reuse = 0
        if reuse < len(slot.kv):
            if not llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, reuse, -1):
                llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)  # e.g. recurrent state
                reuse = 0
            del slot.kv[reuse:]
        slot.cache_key = seq.params.cache_key
        return slot, reuse

    def share_late(self, seq: Sequence) -> None:
        """Before feeding more of ``seq``'s prompt: a slot that has since computed a longer prefix
        of it (agents that arrived together, one prefilling the shared instructions while the
        others wait their turn) shares its cells, and only the rest is computed."""
        assert seq.slot is not None
        donor, shared = self._donor(seq.tokens, seq.slot, seq.fed)
        if donor is None:
            return
        self._share(donor, seq.slot, shared)
        seq.fed = shared
        if not seq.cache_told:  # not reported yet: the shared cells count as read from the cache
            seq.cached_tokens = min(shared, len(seq.prompt))

    def sibling_computes(self, seq: Sequence, prefilling: list[Sequence]) -> bool:
        """Whether a prompt already in this batch computes the next MIN_REUSE or more of ``seq``'s tokens."""
        if not self.rt.unified:
            return False
        return any(common_prefix(other.tokens, seq.tokens) >= seq.fed + MIN_REUSE for other in prefilling)

    def park(self, slot: Slot) -> HostEntry | None:
        """A preempted sequence's cells, every token of them, kept to come back from."""
        return self.host.save(slot, self._others(slot), min_tokens=1)

    def keep_in_host(self, slot: Slot, keep: int) -> None:
        """Copy an idle slot's cells to the host cache when it would lose ``MIN_SAVE`` or more tokens."""
        if len(slot.kv) - keep >= MIN_SAVE:
            self.host.save(slot, self._others(slot))

    def drop(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        slot.kv.clear()

    def evict_idle(self, keep: bool) -> bool:
        """Empty every idle slot; with ``keep``, their states go to the host cache first."""
        evicted = False
        for slot in self.slots:
            if slot.seq is None and slot.kv:
                if keep:
                    self.keep_in_host(slot, 0)
                self.drop(slot)
                evicted = True
        return evicted

    def stats(self) -> dict[str, int]:
        return {"shared_prefixes": self.shared_prefixes, **self.host.stats()}

    # ---- choosing ----------------------------------------------------------------------------

    def _pick_slot(self, seq: Sequence) -> tuple[Slot, int]:
        """The free slot to run ``seq`` in, and how much of its cached prefix it reuses.

        Per-sequence caches: the slot with the longest reusable prefix, else an empty or the LRU
        one. A unified pool can share any slot's prefix (``_donor``), so there a slot that the
        prompt merely extends comes first, then an empty one, then the least recently used:
        a slot holding a prefix many prompts share is shared, not overwritten, and keeps its
        conversation's own tokens. A match shorter than MIN_REUSE (a BOS, a chat template's
        first line) is not worth another conversation's cache, so it only breaks ties.
        """
        tokens = seq.tokens
        best: tuple[bool, int, bool, bool, float] | None = None
        chosen, chosen_reuse = self.slots[0], 0
        key_hint = seq.params.cache_key
        for slot in self.slots:
            if slot.seq is not None:
                continue
            # Keep at least one prompt token to evaluate: its logits give the first sample.
            reuse = min(common_prefix(slot.kv, tokens), len(tokens) - 1)
            if reuse > 0 and not self._swa_ok(slot, reuse):
                reuse = 0
            useful = reuse if reuse >= MIN_REUSE else 0
            extends = self.rt.unified and useful > 0 and len(slot.kv) - reuse < MIN_SAVE
            ranked = useful if extends or not self.rt.unified else 0
            # A prompt_cache_key's own stale cache goes before another key's.
            same_key = key_hint is not None and slot.cache_key == key_hint
            key = (extends, ranked, not slot.kv, same_key, -slot.last_used)
            if best is None or key > best:
                best, chosen, chosen_reuse = key, slot, reuse
        return chosen, chosen_reuse

    def _donor(self, tokens: list[int], chosen: Slot, reuse: int) -> tuple[Slot | None, int]:
        """The slot, busy or idle, whose cells hold the longest prefix of ``tokens`` when that is
        at least MIN_REUSE longer than what ``chosen`` keeps: its cells are then shared with the
        new sequence (``llama_memory_seq_cp`` adds a sequence id to cells of one unified pool,
        nothing is copied). Separate per-sequence caches cannot share a range, so they never donate."""
        if not self.rt.unified:
            return None, 0
        best: Slot | None = None
        longest = reuse + MIN_REUSE - 1
        for slot in self.slots:
            if slot is chosen or not slot.kv:
                continue
            shared = min(common_prefix(slot.kv, tokens), len(tokens) - 1)
            if shared > longest and self._swa_ok(slot, shared):
                best, longest = slot, shared
        return best, (longest if best is not None else 0)

    def _swa_ok(self, slot: Slot, reuse: int) -> bool:
        if self.rt.n_swa <= 0:
            return True
        pos_min = int(llama_cpp.llama_memory_seq_pos_min(self._mem, slot.seq_id))
        return 0 <= pos_min <= max(0, reuse - self.rt.n_swa)

    # ---- moving cells --------------------------------------------------------------------------

    def _share(self, donor: Slot, slot: Slot, shared: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        llama_cpp.llama_memory_seq_cp(self._mem, donor.seq_id, slot.seq_id, -1, shared)
        slot.kv[:] = donor.kv[:shared]
        self.shared_prefixes += 1

    def _restore(self, slot: Slot, entry: HostEntry) -> bool:
        """Bring a stored history back into ``slot`` (the caller cuts the cells past the shared prefix)."""
        if not self.host.restore(entry, slot, self.slots):
            slot.kv.clear()
            return False
        slot.kv[:] = entry.tokens
        return True

    def _others(self, slot: Slot) -> list[Slot]:
        return [other for other in self.slots if other is not slot]
