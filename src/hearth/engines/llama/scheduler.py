"""Continuous batching over one llama.cpp context.

One scheduler thread owns the context. Every step it

1. drops cancelled sequences (their slot is free for the next request at once),
2. admits waiting requests into free slots (reusing a slot's cached prefix, see below),
3. builds ONE ``llama_batch`` holding the next token of every decoding sequence (output on) and
   then chunks of pending prompts (output only on a prompt's last token), at most ``n_batch``
   tokens in all, so a long prompt is prefilled over several steps while running streams keep
   producing a token per step,
4. calls ``llama_decode`` once, then samples each sequence's next token with its own sampler
   chain (and its own grammar, see grammar.py), detokenizes it, applies stop strings, the
   grammar's end and limits, and
5. hands that step's events to the asyncio side with one ``call_soon_threadsafe`` per event loop.

Slots are llama.cpp sequence ids; which slot a sequence takes and which cached cells it starts
from (a slot's own, another slot's shared, or the host cache's) is prefix_cache.py's business.
Waiting requests are admitted by priority and fairly across keys (fair_queue.py): with every
slot busy, a key below its fair share takes a slot from the key furthest above its share, and
urgent work from less urgent work (``_make_way``); the sequence that gives it up is parked in
the host cache and resumes from there. Batch-class work also sits out the decode steps while
more urgent work runs (``_held_back``), and a step of it under way when urgent work arrives is
stopped (step_abort.py): it runs on idle capacity only.

With a unified KV cache (all sequences share one pool of cells) the pool can run out while
sequences grow. Admission keeps a margin; if a decode still finds no free cells, idle slots'
cached prefixes are evicted first, then the most recently admitted sequence is preempted: its
cells are dropped and it goes back to the head of the queue, keeping its sampler and text state,
to be recomputed from its prompt plus the tokens generated so far.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable

import llama_cpp

from hearth.engines.fair_queue import FairQueue, fair_shares
from hearth.engines.llama.detokenize import IncrementalDetokenizer, PieceTable
from hearth.engines.llama.grammar import ConstrainedSampler
from hearth.engines.llama.prefix_cache import PrefixCache
from hearth.engines.llama.sequence import BatchView, Event, Runtime, Sequence
from hearth.engines.llama.step_abort import StepAbort
from hearth.errors import EngineFailure, Overloaded
from hearth.inference.events import FinishReason, GenerationDone, TextDelta

log = logging.getLogger("hearth.llama.scheduler")

# The batch class (gateway/priority.py) and below: it yields the decode steps, not only slots.
YIELDING_PRIORITY = 20


class Scheduler:
    def __init__(self, rt: Runtime, pieces: PieceTable, warm_up: Callable[[], None] | None = None) -> None:
        self.rt = rt
        self._pieces = pieces
        self._batch = BatchView(rt.n_batch)
        self._cache = PrefixCache(rt)
        self._running: list[Sequence] = []  # in admission order
        self._outbox: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, Event]]] = {}
        # Shared with the event loop threads, under _lock.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting: FairQueue[Sequence] = FairQueue()
        self._idle_slots = rt.slots
        self._stopping = False
        self._pending_clear: threading.Event | None = None
        self._service_s = 5.0  # moving average of a request's time in a slot, for Retry-After
        self.steps = 0
        self.batched_tokens = 0  # tokens over all llama_decode calls: their mean batch size
        self.preemptions = 0
        self.aborted_steps = 0
        self._abort = StepAbort(rt.ctx)
        self._abortable = False  # the step under way holds only batch-class work (under _lock)
        # Every llama_decode, the warm-up included, runs on this one thread: an OpenMP build of
        # llama.cpp parallelises on the calling thread, and a second calling thread keeps a second
        # OpenMP team around that slowed every later decode by ~18% (measured): libgomp then
        # manages more threads than CPUs and stops spinning at barriers (see threadpool.py).
        self._warm_up = warm_up
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="llama-scheduler", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._batch.free()
            raise EngineFailure(f"llama.cpp warm-up failed: {self._startup_error}") from self._startup_error

    # ---- event-loop side -------------------------------------------------------------------

    def submit(self, seq: Sequence) -> None:
        with self._lock:
            if self._stopping:
                raise EngineFailure("the model is shutting down")
            # Idle slots take waiting requests at the next step, so they add to the capacity.
            if len(self._waiting) >= self.rt.max_queue + self._idle_slots:
                wait = self._service_s * (len(self._waiting) + 1) / self.rt.slots
                raise Overloaded(
                    f"the server is busy: {len(self._waiting)} requests are waiting for this model",
                    retry_after=min(60.0, max(1.0, wait)),
                )
            self._waiting.push(seq, seq.params.ticket)
            if self._abortable and not _yields(seq):
                self._abort.arm()
            self._wake.notify()

    def cancel(self, seq: Sequence) -> None:
        """The consumer is gone: drop it from the queue now, or from its slot at the next step."""
        seq.cancelled = True
        with self._lock:
            self._waiting.remove(seq)

    def stats(self) -> dict[str, int]:
        with self._lock:
            waiting = len(self._waiting)
        running = list(self._running)  # read without the scheduler's lock: a gauge, not a count to trust
        cells = sum(len(seq.slot.kv) for seq in running if seq.slot is not None)
        return {
            "running": len(running),
            "waiting": waiting,
            "kv_cells_used": cells,
            "kv_cells": self.rt.n_ctx_total,
            "steps": self.steps,
            "batched_tokens": self.batched_tokens,
            "preemptions": self.preemptions,
            "aborted_steps": self.aborted_steps,
            **self._cache.stats(),
        }

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)
        self._batch.free()

    def clear_cache(self) -> None:
        """Forget every idle slot's cached prefix and the host cache (tests start cold with it)."""
        done = threading.Event()
        with self._lock:
            self._pending_clear = done
            self._wake.notify()
        done.wait(timeout=30)

    # ---- scheduler thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._warm_up is not None:
                self._warm_up()
        except Exception as exc:
            self._startup_error = exc
            return
        finally:
            self._ready.set()
        while True:
            with self._lock:
                while not (self._waiting or self._running or self._stopping or self._pending_clear):
                    self._wake.wait()
                if self._stopping:
                    break
                clear, self._pending_clear = self._pending_clear, None
            try:
                if clear is not None:
                    self._cache.evict_idle(keep=False)
                    self._cache.host.clear()
                    clear.set()
                self._step()
            except Exception as exc:  # a bug must not wedge every stream: fail them and go on
                log.exception("llama scheduler step failed")
                self._fail_all(EngineFailure(f"generation failed: {type(exc).__name__}: {exc}"))
            self._flush()
        self._fail_all(EngineFailure("the model is shutting down"))
        with self._lock:
            waiting, self._waiting = list(self._waiting), FairQueue()
        for seq in waiting:
            self._emit(seq, EngineFailure("the model is shutting down"))
        self._flush()

    def _step(self) -> None:
        for seq in [s for s in self._running if s.cancelled]:
            self._detach(seq)
        self._admit()
        if not self._running:
            return
        plan = self._fill_batch()
        if not plan:
            return
        n_tokens = sum(take for _, take in plan)
        self._batch.batch.n_tokens = n_tokens
        with self._lock:  # urgent work submitted during a step of batch-class work stops it
            self._abortable = self._abort.enabled and all(_yields(seq) for seq, _ in plan)
        with self.rt.cpu_turn(), self.rt.turn():
            rc = llama_cpp.llama_decode(self.rt.ctx, self._batch.batch)
        with self._lock:
            self._abortable = False
            self._abort.disarm()
        if rc == 2:  # stopped for urgent work: the step's positions are gone, its tokens unfed
            self.aborted_steps += 1
            return
        self.steps += 1
        self.batched_tokens += n_tokens
        if rc == 1:
            self._make_room()
            return
        if rc != 0:
            for seq, _ in plan:
                self._fail(seq, EngineFailure(f"llama_decode failed (code {rc})"))
            return
        for seq, take in plan:
            assert seq.slot is not None
            seq.slot.kv.extend(seq.tokens[seq.fed : seq.fed + take])
            seq.fed += take
        for seq, _ in plan:
            if seq.out_index >= 0:
                self._sample(seq)

    def _fill_batch(self) -> list[tuple[Sequence, int]]:
        """Decoding sequences first (one token each), then prompt chunks in the space left."""
        plan: list[tuple[Sequence, int]] = []
        used = 0
        ordered = sorted(self._running, key=lambda s: len(s.tokens) - s.fed > 1)  # stable
        prefilling: list[Sequence] = []
        most_urgent = min(s.params.ticket.priority for s in self._running)
        for seq in ordered:
            assert seq.slot is not None
            if _held_back(seq, most_urgent):
                seq.out_index = -1
                continue
            if len(seq.tokens) - seq.fed > 1:
                self._cache.share_late(seq)
                if self._cache.sibling_computes(seq, prefilling):
                    seq.out_index = -1
                    continue  # it shares those cells next step instead of computing them too
                prefilling.append(seq)
            budget = self.rt.n_batch - used
            take = min(len(seq.tokens) - seq.fed, budget)
            seq.out_index = -1
            if take <= 0:
                continue
            last = seq.fed + take == len(seq.tokens)
            chunk = seq.tokens[seq.fed : seq.fed + take]
            self._batch.put(used, chunk, seq.fed, seq.slot.seq_id, output_last=last)
            if last:
                seq.out_index = used + take - 1
            plan.append((seq, take))
            used += take
        return plan

    def _sample(self, seq: Sequence) -> None:
        assert seq.sampler is not None and seq.detok is not None
        try:
            token = seq.sampler.sample(self.rt.ctx, seq.out_index)
        except EngineFailure as exc:  # a grammar dead end fails its own sequence, not the batch
            self._fail(seq, exc)
            return
        seq.completion_tokens += 1
        seq.unreported += 1
        if llama_cpp.llama_vocab_is_eog(self.rt.vocab, token):
            self._finish(seq, "stop")
            return
        text = seq.stops.push(seq.detok.push(token))
        if text:
            self._emit(seq, self._delta(seq, text))
        if seq.stops.stopped or (isinstance(seq.sampler, ConstrainedSampler) and seq.sampler.complete):
            self._finish(seq, "stop")
        elif seq.completion_tokens >= seq.params.max_tokens or len(seq.tokens) >= self.rt.ctx_seq:
            self._finish(seq, "length")
        else:
            seq.tokens.append(token)

    # ---- admission and slots ---------------------------------------------------------------

    def _admit(self) -> None:
        """Waiting work into free slots, most urgent class first and fairly across keys
        (fair_queue.py); with no slot free, a key below its fair share takes one from a key
        above it, and more urgent work one from less urgent work (``_make_way``)."""
        while True:
            with self._lock:
                seq = self._waiting.peek()
                if seq is None:
                    return
                if seq.cancelled:  # flagged without the lock (a stream garbage-collected)
                    self._waiting.remove(seq)
                    continue
                if _yields(seq) and self._idle_slots <= 1 < self.rt.slots:
                    return  # the last free slot is kept for urgent work: it need not preempt
                if self._idle_slots == 0:
                    victim = self._make_way(seq)
                    if victim is None:
                        return
                    self._waiting.take(seq)
                elif self._running and not self._fits(seq):
                    return  # wait for cells to free up rather than preempt right away
                else:
                    victim = None
                    self._waiting.pop()
                self._idle_slots -= 1
            if victim is not None:
                self._preempt(victim, keep=True)  # its slot goes to ``seq``
            self._attach(seq)

    def _make_way(self, seq: Sequence) -> Sequence | None:
        """The running sequence ``seq`` should take the place of, if any (called under the lock).

        One that is less urgent, else, among equally urgent work, the newest of the key furthest
        above its fair share, when ``seq``'s key is below its own. A victim must have produced a
        token since it was admitted, so that every sequence makes progress between preemptions;
        its state goes to the host cache, so coming back costs a copy, not a prefill.
        """
        ticket = seq.params.ticket
        movable = [s for s in self._running if s.admitted_tokens < s.completion_tokens and not s.cancelled]
        # A held-back sequence makes no progress to protect: it may give way at once.
        held = [s for s in self._running if _held_back(s, ticket.priority) and not s.cancelled]
        less_urgent = [s for s in [*movable, *held] if s.params.ticket.priority > ticket.priority]
        if less_urgent:
            return max(less_urgent, key=lambda s: (s.params.ticket.priority, s.started))
        peers = [s for s in self._running if s.params.ticket.priority == ticket.priority]
        weights = {s.params.ticket.tenant: s.params.ticket.weight for s in peers}
        weights.update(self._waiting.waiting_tenants())
        shares = fair_shares(self.rt.slots, weights)
        running = collections.Counter(s.params.ticket.tenant for s in peers)
        if running[ticket.tenant] + 1 > shares.get(ticket.tenant, 0) + 0.5:
            return None  # it already runs its share
        over = [
            s
            for s in movable
            if s in peers and running[s.params.ticket.tenant] - 1 >= shares[s.params.ticket.tenant]
        ]
        if not over:
            return None
        return max(
            over, key=lambda s: (running[s.params.ticket.tenant] - shares[s.params.ticket.tenant], s.started)
        )

    def _fits(self, seq: Sequence) -> bool:
        if not self.rt.unified:
            return True  # every slot has its own ctx_seq cells
        # Cells the running sequences hold or will hold for their pending tokens, plus room for
        # every sequence to grow a few steps before the pool could run out.
        in_use = sum(len(s.tokens) + 1 for s in self._running)
        margin = 16 * (len(self._running) + 1)
        return in_use + len(seq.tokens) + margin <= self.rt.n_ctx_total

    def _attach(self, seq: Sequence) -> None:
        if seq.sampler is None:  # first admission (not a resume after preemption)
            try:
                seq.sampler = seq.make_sampler()
            except Exception as exc:
                log.exception("could not build a sampler")
                self._emit(seq, EngineFailure(f"could not set up sampling: {exc}"))
                with self._lock:
                    self._idle_slots += 1
                return
        slot, reuse = self._cache.place(seq)
        slot.seq, seq.slot, seq.fed = seq, slot, reuse
        seq.admitted_tokens = seq.completion_tokens
        if seq.cached_tokens is None:  # first admission
            seq.cached_tokens = min(reuse, len(seq.prompt))
            seq.started = time.monotonic()
            seq.detok = IncrementalDetokenizer(self._pieces)
        self._running.append(seq)

    def _detach(self, seq: Sequence) -> None:
        slot = seq.slot
        if slot is not None:
            slot.seq, slot.last_used = None, time.monotonic()
            seq.slot = None
        if seq in self._running:
            self._running.remove(seq)
        if seq.sampler is not None:
            seq.sampler.close()
            seq.sampler = None
        if seq.started:
            self._service_s = 0.8 * self._service_s + 0.2 * (time.monotonic() - seq.started)
        with self._lock:
            self._idle_slots += 1

    def _make_room(self) -> None:
        """No free KV cells for this batch: evict idle caches, else preempt the newest sequence."""
        if self._cache.evict_idle(keep=True):
            return
        if len(self._running) > 1:
            victim = self._running[-1]
            log.info("KV cache full: preempting a sequence of %d tokens", len(victim.tokens))
            self._preempt(victim, keep=False)
            return
        for seq in list(self._running):
            self._fail(seq, EngineFailure("the KV cache is too small for this sequence"))

    def _preempt(self, victim: Sequence, keep: bool) -> None:
        """Take ``victim`` out of its slot and put it first in its key's queue, keeping its
        sampler and text; with ``keep`` its cells go to the host cache, to come back from."""
        self.preemptions += 1
        slot = victim.slot
        assert slot is not None
        if keep:  # every token: coming back must not cost a prefill, however short
            victim.parked = self._cache.park(slot)
        self._cache.drop(slot)
        slot.seq, victim.slot = None, None
        self._running.remove(victim)
        victim.fed = 0
        with self._lock:
            self._idle_slots += 1
            self._waiting.push(victim, victim.params.ticket, front=True)

    # ---- endings and delivery --------------------------------------------------------------

    def _finish(self, seq: Sequence, reason: FinishReason) -> None:
        tail = ""
        if not seq.stops.stopped:
            assert seq.detok is not None
            tail = seq.stops.push(seq.detok.flush())
            if seq.stops.stopped:
                reason = "stop"
            else:
                tail += seq.stops.flush()
        if tail or seq.unreported:
            self._emit(seq, self._delta(seq, tail))
        self._emit(
            seq,
            GenerationDone(
                reason, len(seq.prompt), seq.completion_tokens, seq.cached_tokens or 0, seq.stops.matched
            ),
        )
        self._detach(seq)

    @staticmethod
    def _delta(seq: Sequence, text: str) -> TextDelta:
        """The next piece of ``seq``'s text; its first also says how much of the prompt was cached."""
        if seq.cache_told:
            first, queued = None, None
        else:
            first, queued = seq.cached_tokens, max(0.0, seq.started - seq.submitted)
        seq.cache_told, tokens, seq.unreported = True, seq.unreported, 0
        return TextDelta(text, tokens, first, queued)

    def _fail(self, seq: Sequence, error: EngineFailure) -> None:
        if seq.slot is not None:  # its cells may be half-written: don't keep them as a cache
            self._cache.drop(seq.slot)
        self._emit(seq, error)
        self._detach(seq)

    def _fail_all(self, error: EngineFailure) -> None:
        for seq in list(self._running):
            self._fail(seq, error)

    def _emit(self, seq: Sequence, event: Event) -> None:
        if not seq.cancelled:
            self._outbox.setdefault(seq.loop, []).append((seq, event))

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, {}
        for loop, items in outbox.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that event loop is closed: nobody is listening any more
                for seq, _ in items:
                    seq.cancelled = True


def _yields(seq: Sequence) -> bool:
    return seq.params.ticket.priority >= YIELDING_PRIORITY


def _held_back(seq: Sequence, most_urgent: int) -> bool:
    """Batch-class and shadow work runs only on capacity nothing more urgent wants: while a more
    urgent sequence runs, it keeps its slot and cells but sits out the decode steps, so an
    interactive request's prefill and tokens cost what they cost on an idle server. A step of
    such work that is under way when urgent work arrives is stopped (step_abort.py)."""
    return _yields(seq) and seq.params.ticket.priority > most_urgent


def _deliver(items: list[tuple[Sequence, Event]]) -> None:
    for seq, event in items:
        seq.queue.put_nowait(event)
