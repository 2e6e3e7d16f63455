"""Stopping a decode step of batch-class work when urgent work arrives.

A decode step of 8 batch sequences takes about 70 ms on 2 cores, where one interactive token
takes 12: an interactive request that arrives during such a step would wait half of it on
average, tripling its time to first token. llama.cpp checks an abort callback between the
nodes of the compute graph; when it says yes, ``llama_decode`` returns 2 and removes the step's
positions from the KV cache, so the sequences are as before the step and simply feed those
tokens again later. (Only a step of one micro-batch is rolled back whole, which is why the
chat engine keeps ``n_ubatch == n_batch``.)

The callback runs on a compute thread for every graph node, so it must not be Python: a
ctypes callback would take the GIL a thousand times a step, waiting on the event loop each
time. It is libc's ``strlen`` over a two-byte buffer instead: the string is ``""`` (0, false)
or ``"\\x01"`` (1, true), and a ``size_t`` of 0 or 1 in the return register is a valid C
``bool`` on the x86-64 and AArch64 ABIs. Setting the first byte from Python arms it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

import llama_cpp

log = logging.getLogger("hearth.llama.scheduler")


def _strlen() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return libc.strlen
    except (OSError, AttributeError):  # no libc to borrow from: steps are simply not stopped
        return None


class StepAbort:
    """An abort switch on one llama.cpp context: ``arm`` during a step stops it soon after."""

    def __init__(self, ctx: Any) -> None:
        self._flag = ctypes.create_string_buffer(2)
        strlen = _strlen()
        self.enabled = strlen is not None
        if strlen is None:
            log.info("no libc strlen: batch-class decode steps run to their end")
            return
        address = ctypes.cast(strlen, ctypes.c_void_p).value
        assert address is not None
        self._callback = llama_cpp.ggml_abort_callback(address)  # kept: C holds a raw pointer
        llama_cpp.llama_set_abort_callback(ctx, self._callback, ctypes.cast(self._flag, ctypes.c_void_p))

    def arm(self) -> None:
        self._flag[0] = b"\x01"

    def disarm(self) -> None:
        self._flag[0] = b"\x00"

    @property
    def armed(self) -> bool:
        return self._flag[0] == b"\x01"
