"""Small model classes for the worker-process tests: they run in the worker, so they live in a module."""

from __future__ import annotations

import os
import time
from typing import Any


class Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "start": self.value}

    def add(self, amount: int) -> int:
        self.value += amount
        return self.value

    def fail(self) -> None:
        raise ValueError("no such thing")

    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def pid(self) -> int:
        return os.getpid()


class Broken:
    def __init__(self) -> None:
        raise RuntimeError("the weights are damaged")
