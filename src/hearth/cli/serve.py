"""``hearth serve``: the configured models over HTTP, with keys, limits and the ledger.

SIGTERM drains: ``/ready`` fails at once so load balancers stop sending, new requests keep being
served for ``--shutdown-delay`` seconds while they notice, then uvicorn stops accepting and lets
in-flight requests and streams finish (up to ``--drain-timeout``), and the ledger is flushed.
Ctrl-C (SIGINT) skips the delay.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hearth import logs
from hearth.cli.banner import LoadedModel, degraded_notes, print_banner, render
from hearth.cli.common import ConfigOpt, settings_or_exit
from hearth.config import Settings
from hearth.guide import is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

console = Console()
log = logging.getLogger("hearth.serve")


def announce(settings: Settings, app: FastAPI) -> None:
    """Print the start-up banner (once the server is ready)."""
    from hearth.gateway.auth import ADMIN_KEY_FILE  # here: sqlalchemy stays off serve's first second

    entries = app.state.services.catalog.entries
    models = [
        LoadedModel(
            e.spec.id,
            e.spec.kind,
            tuple(e.spec.aliases),
            e.error if e.state == "failed" else None,
            on_first_use=e.state == "unloaded" and e.spec.load == "first-use",
        )
        for e in entries
    ]
    problems = degraded_notes(entries)
    admin_file = None if settings.admin_key else Path(settings.data_dir) / ADMIN_KEY_FILE
    print_banner(render(settings, models, admin_key_file=admin_file, problems=problems))


def log_ready(settings: Settings) -> None:
    log.info("ready on http://%s:%d", settings.host, settings.port)


def serve(
    host: Annotated[str, typer.Option(envvar="HEARTH_HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HEARTH_PORT", help="Port to bind.")] = 8000,
    config: ConfigOpt = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", envvar="HEARTH_NO_AUTH", help="Disable API keys (loopback only).")
    ] = False,
    log_level: Annotated[str, typer.Option(envvar="HEARTH_LOG_LEVEL")] = "info",
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            envvar="HEARTH_LOG_FORMAT",
            help="text (default) or json: one JSON object per line, with the request id.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", envvar="HEARTH_QUIET", help="No start-up banner.")
    ] = False,
) -> None:
    """Serve the configured models over HTTP."""
    from hearth.engines.registry import prestart_worker

    if no_auth and not is_loopback(host):
        console.print(f"[red]--no-auth refuses to bind to {host}: without keys, bind to 127.0.0.1 only[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit(
        config, host=host, port=port, no_auth=no_auth or None, log_level=log_level, log_format=log_format
    )
    # First, so that the torch models' imports (seconds) overlap the server's own imports and loads.
    prestart_worker(settings.models, settings.torch_engines)

    import uvicorn

    from hearth.app import build_app
    from hearth.cli.draining import DrainingServer
    from hearth.store.backup import hold_serving_lock

    json_logs = settings.log_format == "json"
    log_config = logs.configure(settings.log_level, settings.log_format, (settings.admin_key or "",))
    # JSON logs keep stdout machine-readable: a ready line instead of the banner.
    hooks: list[Callable[[FastAPI], None]] = [lambda _app: settle_heap()]
    if not quiet:
        hooks.append(lambda app: log_ready(settings) if json_logs else announce(settings, app))
    app = build_app(settings, on_ready=hooks)
    server_config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=log_config,
        access_log=not json_logs,
        timeout_graceful_shutdown=max(1, round(settings.drain_timeout_s)),
    )
    # Held for the process's life: `hearth db restore` refuses a SQLite database a server uses.
    serving = hold_serving_lock(settings.resolved_database_url)
    try:
        DrainingServer(server_config, app.state.services.readiness, settings.shutdown_delay_s).run()
    finally:
        if serving is not None:
            serving.close()


def settle_heap() -> None:
    """Once serving: move what start-up made (imports, the app, the models' objects) out of the
    garbage collector's sight. They live as long as the process, and a full collection would
    otherwise walk them all, a pause of tens of milliseconds in the middle of serving (p99 at 16
    clients through an upstream halves; docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
