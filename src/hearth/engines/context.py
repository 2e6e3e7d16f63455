"""What every engine of one server shares, built once by the app and handed to each engine.

One server's engines take turns on the CPU (``compute``), keep their files in one data dir, and
run their torch models where the settings say (the worker process, or this one). Tests and
benchmarks that build an engine alone give it a context of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hearth.config import Settings
from hearth.engines.compute import ComputeTurns
from hearth.engines.worker import Mode


@dataclass(frozen=True)
class EngineContext:
    data_dir: Path
    compute: ComputeTurns = field(default_factory=ComputeTurns)
    torch_engines: Mode = "process"  # where torch models run: the worker process, or "inline"

    @classmethod
    def of(cls, settings: Settings) -> EngineContext:
        """The context a server with these settings gives its engines."""
        return cls(settings.data_dir, ComputeTurns(settings.takes_cpu_turns), settings.torch_engines)
