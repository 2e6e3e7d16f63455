"""``hearth doctor``: what this machine is, which configured models fit, and what to run on it.

Nothing is loaded: the machine comes from ``probes``, each model's size and memory estimate from
its engine class (``Engine.footprint``, which reads file headers only), and the advice from
``advice``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hearth.cli.common import settings_or_exit
from hearth.cli.doctor.advice import GIB, assign_fit, recommend
from hearth.cli.doctor.probes import cpu_info, disk_free, gpu_info, llama_build, memory_info
from hearth.config import ModelSpec, Settings
from hearth.engines.base import ModelFootprint

console = Console()


def footprint(spec: ModelSpec, data_dir: Path) -> ModelFootprint:
    """Size, parameters and an estimate of serving memory for one configured model."""
    from hearth.engines.registry import engine_class

    try:
        return engine_class(spec).footprint(spec, data_dir)
    except Exception as exc:  # a broken model entry is reported, never fatal to the report
        return ModelFootprint(
            spec.id, spec.kind.value, spec.backend, note=f"cannot inspect: {type(exc).__name__}: {exc}"
        )


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
