"""CPU topology from sysfs, shared by the llama.cpp engine and ``hearth doctor``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def physical_cores_of(cpus: Iterable[int]) -> int:
    """Distinct physical cores among these logical CPUs; 0 when sysfs cannot tell."""
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text(), (topo / "core_id").read_text()))
        except OSError:
            return 0
    return len(cores)


def physical_cores() -> int:
    """Physical cores this process may run on: SMT siblings share one core's matmul units."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus:
        return max(1, os.cpu_count() or 1)
    return physical_cores_of(cpus) or len(cpus)
