"""The ``hearth`` command line (Typer + Rich). Every option also reads a ``HEARTH_*`` variable."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hearth.cli_analyze import analyze
from hearth.cli_bench import bench
from hearth.cli_chat import chat
from hearth.cli_common import settings_or_exit
from hearth.cli_doctor import doctor
from hearth.cli_store import db_app, keys_app, usage
from hearth.config import Settings

app = typer.Typer(help="Hearth: your own AI provider.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List and inspect the configured models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.command("usage")(usage)
app.command("doctor")(doctor)
app.command("bench")(bench)
app.command("chat")(chat)
app.command("analyze")(analyze)
console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", envvar="HEARTH_CONFIG", help="Models/settings file (TOML or YAML).")
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    return settings_or_exit(config, **overrides)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HEARTH_HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HEARTH_PORT", help="Port to bind.")] = 8000,
    config: ConfigOpt = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", envvar="HEARTH_NO_AUTH", help="Disable API keys (loopback only).")
    ] = False,
    log_level: Annotated[str, typer.Option(envvar="HEARTH_LOG_LEVEL")] = "info",
) -> None:
    """Serve the configured models over HTTP."""
    import uvicorn

    from hearth.app import build_app

    if no_auth and not _is_loopback(host):
        console.print(f"[red]--no-auth refuses to bind to {host}: without keys, bind to 127.0.0.1 only[/red]")
        raise typer.Exit(2)
    settings = _settings(config, host=host, port=port, no_auth=no_auth or None, log_level=log_level)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )


@models_app.command("list")
def models_list(config: ConfigOpt = None) -> None:
    """The configured models, their kinds, backends and sources."""
    settings = _settings(config)
    table = Table("id", "kind", "backend", "aliases", "source")
    for spec in settings.models:
        table.add_row(spec.id, spec.kind.value, spec.backend, ", ".join(spec.aliases), spec.source)
    console.print(table)


@models_app.command("info")
def models_info(model_id: str, config: ConfigOpt = None) -> None:
    """Load one model and show its kind, size, parameters, quantisation, context and device."""
    from hearth.engines.registry import engine_class

    settings = _settings(config)
    spec = settings.find_model(model_id)
    if spec is None:
        console.print(f"[red]no model {model_id!r}[/red]; see `hearth models list`")
        raise typer.Exit(1)
    with console.status(f"loading {spec.id}..."):
        engine = engine_class(spec)(spec, settings.data_dir)
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


if __name__ == "__main__":
    app()
