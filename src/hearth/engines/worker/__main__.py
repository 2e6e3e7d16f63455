"""The model worker process: ``python -m hearth.engines.worker FD``, started by :class:`ModelWorker`.

It holds model objects by key and runs their methods as the server asks. Each model has one
thread, so two models run side by side (the server's compute turns decide whether they overlap)
and one model's calls run in order, as they did in the server's batcher thread. It ignores
Ctrl-C, which the terminal sends to the whole process group: the server decides when it stops.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from hearth.engines.worker import resolve


def _return_memory() -> None:
    import ctypes
    import ctypes.util

    gc.collect()
    name = ctypes.util.find_library("c")
    if name is not None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).malloc_trim(0)


class Worker:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._preparing = ThreadPoolExecutor(1, thread_name_prefix="prepare")

    def serve(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break  # the server is gone
            if message[0] == "exit":
                break
            if message[0] == "prepare":
                self._preparing.submit(self._prepare, message[1])
                continue
            _, call_id, key, method, args = message
            thread = self._threads.get(key)
            if thread is None:
                thread = self._threads[key] = ThreadPoolExecutor(1, thread_name_prefix=f"model-{key}")
            thread.submit(self._run, call_id, key, method, args)
        for thread in (self._preparing, *self._threads.values()):
            thread.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _prepare(factory: str) -> None:
        with contextlib.suppress(Exception):
            resolve(factory).prepare()

    def _run(self, call_id: int, key: str, method: str, args: tuple[Any, ...]) -> None:
        try:
            if method == "__load__":
                factory, factory_args = args
                model = resolve(factory)(*factory_args)
                self._models[key] = model
                value = model.describe()
            elif method == "__unload__":
                self._models.pop(key, None)
                _return_memory()
                value = None
            else:
                value = getattr(self._models[key], method)(*args)
            reply: tuple[Any, ...] = ("result", call_id, True, value)
        except Exception as exc:  # the server turns it into EngineFailure for the request
            reply = ("result", call_id, False, f"{type(exc).__name__}: {exc}")
        with self._send_lock:
            try:
                self._conn.send(reply)
            except OSError:
                pass  # the server is gone; serve() sees it too
            except Exception as exc:  # a value that doesn't pickle: say so rather than hang the call
                self._conn.send(("result", call_id, False, f"the reply could not be sent: {exc}"))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Worker(Connection(int(sys.argv[1]))).serve()
    sys.stdout.flush()
    os._exit(0)  # torch's thread pools would otherwise be joined at exit, for nothing


if __name__ == "__main__":
    main()
