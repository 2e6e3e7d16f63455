"""``hearth models list|info``: the configured models, and one model's details once loaded."""

from __future__ import annotations

import dataclasses

import typer
from rich.console import Console
from rich.table import Table

from hearth.cli.common import ConfigOpt, settings_or_exit

console = Console()
models_app = typer.Typer(help="List and inspect the configured models.", no_args_is_help=True)


@models_app.command("list")
def models_list(config: ConfigOpt = None) -> None:
    """The configured models, their kinds, backends and sources."""
    settings = settings_or_exit(config)
    table = Table("id", "kind", "backend", "aliases", "source")
    for spec in settings.models:
        table.add_row(spec.id, spec.kind.value, spec.backend, ", ".join(spec.aliases), spec.source)
    console.print(table)


@models_app.command("info")
def models_info(model_id: str, config: ConfigOpt = None) -> None:
    """Load one model and show its kind, size, parameters, quantisation, context and device."""
    from hearth.engines.context import EngineContext
    from hearth.engines.registry import engine_class

    settings = settings_or_exit(config)
    spec = settings.find_model(model_id)
    if spec is None:
        console.print(f"[red]no model {model_id!r}[/red]; see `hearth models list`")
        raise typer.Exit(1)
    with console.status(f"loading {spec.id}..."):
        engine = engine_class(spec)(spec, EngineContext.of(settings))
        engine.load()
    info = engine.info()
    engine.close()
    table = Table("field", "value", show_header=False)
    for field in dataclasses.fields(info):
        value = getattr(info, field.name)
        if field.name == "extra":
            for key, extra in value.items():
                table.add_row(key, _human(key, extra))
        else:
            table.add_row(field.name, _human(field.name, value))
    console.print(table)


def _human(name: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and name.endswith("bytes"):
        return f"{value:,} ({value / 2**20:.1f} MiB)"
    if isinstance(value, int) and name == "parameters":
        return f"{value:,} ({value / 1e6:.1f} M)"
    return str(getattr(value, "value", value))
