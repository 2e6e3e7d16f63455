"""``hearth models list|info``: the configured models (or a running server's, with each upstream
endpoint's health), and one model's details once loaded."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hearth.cli.client_helpers import BaseUrlOpt
from hearth.cli.common import ConfigOpt, settings_or_exit
from hearth.clients._config import Endpoint
from hearth.config import Settings
from hearth.gateway.auth import ADMIN_KEY_FILE

console = Console()
models_app = typer.Typer(help="List and inspect the configured models.", no_args_is_help=True)


LiveOpt = Annotated[
    bool,
    typer.Option(
        "--live",
        help="Ask the running server (--base-url) with the admin key: every model's state, and each "
        "upstream endpoint's health, breaker, requests in flight and latency.",
    ),
]


@models_app.command("list")
def models_list(config: ConfigOpt = None, live: LiveOpt = False, base_url: BaseUrlOpt = None) -> None:
    """The configured models, their kinds, backends and sources (--live: the running server's)."""
    settings = settings_or_exit(config)
    if live:
        console.print(_live_table(settings, base_url))
        return
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


def _admin_secret(settings: Settings) -> str:
    """The operator's key: HEARTH_ADMIN_KEY, or the one the server wrote in its data directory."""
    if settings.admin_key:
        return settings.admin_key
    path = Path(settings.data_dir) / ADMIN_KEY_FILE
    if not path.is_file():
        console.print(
            f"[red]no admin key:[/red] set HEARTH_ADMIN_KEY, or run this where the server's data directory "
            f"is (HEARTH_DATA_DIR; {path} does not exist)"
        )
        raise typer.Exit(2)
    return path.read_text().strip()


def _live_table(settings: Settings, base_url: str | None) -> Table:
    server = Endpoint.resolve(base_url, None).server
    try:
        reply = httpx.get(
            f"{server}/admin/models",
            headers={"Authorization": f"Bearer {_admin_secret(settings)}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        console.print(
            f"[red]no Hearth server answers at {server}[/red] ({type(exc).__name__}); start one with `hearth serve`"
        )
        raise typer.Exit(1) from exc
    if reply.status_code != 200:
        console.print(f"[red]{server}/admin/models answered {reply.status_code}[/red]: {reply.text[:300]}")
        raise typer.Exit(1)
    table = Table("id", "backend", "state", "in flight", "endpoint", "health", "breaker", "in flight / queued",
                  "first byte", "requests / errors", title=f"models at {server}")  # fmt: skip
    for model in reply.json()["data"]:
        state = escape(f"{model['state']}: {model['error']}" if model.get("error") else model["state"])
        head = [model["id"], model["backend"], state, str(model["in_flight"])]
        endpoints: list[dict[str, Any]] = model.get("endpoints") or []
        if not endpoints:
            table.add_row(*head, "local", *[""] * 5)
        for index, endpoint in enumerate(endpoints):
            table.add_row(*(head if index == 0 else [""] * 4), *_endpoint_cells(endpoint))
    return table


def _endpoint_cells(endpoint: dict[str, Any]) -> list[str]:
    health = "[green]healthy[/green]" if endpoint["healthy"] else "[red]down[/red]"
    if endpoint.get("last_error"):
        health += f" ({escape(endpoint['last_error'])})"
    latency = endpoint.get("latency_ms")
    return [
        escape(endpoint["endpoint"]),
        health,
        endpoint["breaker"],
        f"{endpoint['in_flight']} / {endpoint['server_queue']}",
        "-" if latency is None else f"{latency:.0f} ms",
        f"{endpoint['requests']} / {endpoint['errors']}",
    ]
