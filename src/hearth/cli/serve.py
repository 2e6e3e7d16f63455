"""``hearth serve``: the configured models over HTTP, with keys, limits and the ledger."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer
from rich.console import Console

from hearth.cli.common import ConfigOpt, settings_or_exit

console = Console()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    settings = settings_or_exit(config, host=host, port=port, no_auth=no_auth or None, log_level=log_level)
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
