"""The machine, read without loading anything: CPU, memory (and a container's limit), GPU, disk.

CPU from ``/proc/cpuinfo`` and sysfs, memory from ``/proc/meminfo`` and the cgroup limit (so a
container sees its own limit), a GPU through ``nvidia-smi`` when present.
"""

from __future__ import annotations

import os
import platform
import shutil

# Nvidia-smi, found on PATH, with a fixed argument list (bandit B404).
import subprocess  # nosec B404
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hearth.cpu_topology import physical_cores_of


@dataclass(frozen=True)
class CpuInfo:
    model: str
    arch: str
    flags: frozenset[str]
    logical: int
    physical: int
    usable: int  # CPUs this process may run on (affinity / container cpuset)

    @property
    def simd(self) -> list[str]:
        """The SIMD extensions llama.cpp and torch care about, as found in the flags."""
        names = {
            "avx": "AVX",
            "avx2": "AVX2",
            "fma": "FMA",
            "f16c": "F16C",
            "avx512f": "AVX512",
            "avx512_vnni": "AVX512-VNNI",
            "avx512_bf16": "AVX512-BF16",
            "amx_tile": "AMX",
            "asimd": "NEON",
            "asimddp": "NEON-DOTPROD",
            "fphp": "FP16",
            "i8mm": "I8MM",
            "sve": "SVE",
        }
        return [label for flag, label in names.items() if flag in self.flags]


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str], int]:
    """Model name, flags and the count of physical cores (0 if unknown) from ``/proc/cpuinfo``."""
    names: dict[str, str] = {}
    flags = set[str]()
    cores: set[tuple[str, str]] = set()
    physical_id = "0"
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name in {"model name", "hardware", "model", "cpu model"} and value and not value.isdigit():
            names.setdefault(name, value)  # x86's "model" is a number; a Raspberry Pi's names the board
        elif name in {"flags", "features"}:
            flags.update(value.split())
        elif name == "physical id":
            physical_id = value
        elif name == "core id":
            cores.add((physical_id, value))
    model = next((names[k] for k in ("model name", "model", "hardware", "cpu model") if k in names), "")
    return model, frozenset(flags), len(cores)


def cpu_info(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    try:
        text = cpuinfo_path.read_text(errors="replace")
    except OSError:
        text = ""
    model, flags, physical = parse_cpuinfo(text)
    logical = os.cpu_count() or 1
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(logical))
    usable_physical = physical_cores_of(affinity) or physical or len(affinity)
    return CpuInfo(
        model=model or platform.processor() or "unknown",
        arch=platform.machine(),
        flags=flags,
        logical=logical,
        physical=min(usable_physical, physical) if physical else usable_physical,
        usable=len(affinity),
    )


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int
    available_bytes: int
    cgroup_limit_bytes: int | None = None

    @property
    def usable_bytes(self) -> int:
        """What this process can really use: available memory, capped by a container's limit."""
        if self.cgroup_limit_bytes is None:
            return self.available_bytes
        return min(self.available_bytes, self.cgroup_limit_bytes)


def parse_meminfo(text: str) -> tuple[int, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    total = values.get("MemTotal", 0)
    return total, values.get("MemAvailable", values.get("MemFree", total))


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 2**60:  # cgroup v1 says "unlimited" with a huge number
            return int(raw)
    return None


def memory_info(meminfo_path: Path = Path("/proc/meminfo")) -> MemoryInfo:
    try:
        total, available = parse_meminfo(meminfo_path.read_text())
    except OSError:
        total = available = 0
    return MemoryInfo(total, available, cgroup_memory_limit())


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_total_bytes: int
    memory_free_bytes: int
    driver: str


def gpu_info() -> tuple[list[GpuInfo], str]:
    """NVIDIA GPUs through ``nvidia-smi``, and a note on how they were (not) found."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "none (no nvidia-smi)"
    query = "--query-gpu=name,memory.total,memory.free,driver_version"
    try:
        # Nvidia-smi with fixed arguments, no shell (bandit B603).
        result = subprocess.run(  # nosec B603
            [smi, query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed: {exc}"
    if result.returncode != 0:
        return [], f"nvidia-smi failed: {(result.stderr or result.stdout).strip()[:200]}"
    gpus = []
    for line in result.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            name, total, free, driver = parts
            gpus.append(GpuInfo(name, int(float(total)) * 2**20, int(float(free)) * 2**20, driver))
    return gpus, f"{len(gpus)} NVIDIA GPU(s)"


def disk_free(path: Path) -> tuple[Path, int, int]:
    """Free and total bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return probe, usage.free, usage.total


def llama_build() -> dict[str, Any]:
    """What the installed llama.cpp was compiled for, and whether that build is safe here."""
    try:
        from hearth.engines.llama import native
    except ImportError as exc:  # llama-cpp-python missing or broken: GGUF models cannot load
        return {"system_info": None, "amx": False, "note": f"llama-cpp-python unusable: {exc}"}
    amx = native.amx_compiled()
    note = None
    if amx:
        note = (
            "llama-cpp-python was compiled with AMX, whose kernels crash on some CPUs: GGUFs load "
            "without AMX and repacked weights (slower); rebuild with "
            "CFLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' for full speed"
        )
    return {"system_info": native.system_info(), "amx": amx, "note": note}
