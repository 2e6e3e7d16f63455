"""What to run here: threads, the largest chat model worth running, and which configured models fit."""

from __future__ import annotations

from dataclasses import dataclass

from hearth.cli.doctor.probes import CpuInfo, MemoryInfo
from hearth.engines.base import ModelFootprint

GIB = 2**30
# Bytes per parameter of a Q4_K_M GGUF (about 4.85 bits), for the size recommendation.
Q4_K_M_BYTES_PER_PARAM = 0.61
RUNTIME_OVERHEAD_BYTES = 300 * 2**20  # Python, torch and llama.cpp themselves


@dataclass
class Recommendation:
    threads: int
    max_gguf_params: int
    max_gguf_bytes: int
    notes: list[str]


def recommend(cpu: CpuInfo, memory: MemoryInfo, models: list[ModelFootprint]) -> Recommendation:
    """Thread count and the largest Q4_K_M chat model worth running here."""
    notes: list[str] = []
    threads = max(1, min(cpu.physical, cpu.usable))
    others = sum(m.memory_bytes or 0 for m in models if m.kind != "chat")
    budget = max(0, memory.usable_bytes - RUNTIME_OVERHEAD_BYTES - others - GIB // 2)
    by_memory = int(budget * 0.8 / Q4_K_M_BYTES_PER_PARAM)  # leave a fifth for the KV cache
    # Decode speed is bound by memory bandwidth and cores: beyond these sizes chat gets too slow
    # to be interactive (fewer than about 10 tokens/s) on CPUs of that class.
    by_cores = 1_000_000_000 if threads <= 2 else 3_000_000_000 if threads <= 4 else 8_000_000_000
    if threads > 8:
        by_cores = 14_000_000_000
    max_params = min(by_memory, by_cores)
    if by_memory < by_cores:
        notes.append("memory is the limit for chat model size")
    else:
        notes.append("CPU cores are the limit for interactive chat speed")
    simd = cpu.simd
    if cpu.arch in {"x86_64", "AMD64"} and "AVX2" not in simd:
        notes.append("no AVX2: llama.cpp runs several times slower; prefer the smallest models")
    if cpu.arch in {"aarch64", "arm64"} and "NEON-DOTPROD" not in simd:
        notes.append("no NEON dot-product: quantised models run slower (Raspberry Pi 4 class)")
    if cpu.logical > cpu.physical:
        notes.append(f"{cpu.logical} logical CPUs on {cpu.physical} cores: use one thread per core")
    return Recommendation(
        threads, max(max_params, 0), int(max(max_params, 0) * Q4_K_M_BYTES_PER_PARAM), notes
    )


def assign_fit(models: list[ModelFootprint], usable_bytes: int) -> None:
    """Mark each model as fitting if it and every model listed before it fit in memory together."""
    used = RUNTIME_OVERHEAD_BYTES
    for model in models:
        if model.memory_bytes is None:
            continue
        used += model.memory_bytes
        model.fits = used <= usable_bytes
