"""What every ``hearth`` command shares: loading settings, with a clean exit on a bad config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hearth.config import Settings, load_settings

console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", envvar="HEARTH_CONFIG", help="Models/settings file (TOML or YAML).")
]


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config=config, **overrides)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
