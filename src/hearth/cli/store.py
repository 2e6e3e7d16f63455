"""``hearth keys``, ``hearth usage`` and ``hearth db``: work on the database directly.

They need no running server, so an operator can create the first key before starting one, or
inside a container with ``podman exec``.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from hearth.cli.common import ConfigOpt, settings_or_exit
from hearth.config import Settings
from hearth.errors import HearthError

if TYPE_CHECKING:  # SQLAlchemy and Alembic load when a command needs the database, not at start-up
    from hearth.store.database import Database
    from hearth.store.keys import ApiKeyView, KeyStore

keys_app = typer.Typer(help="Create, list, revoke and rotate API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations, backups and purges.", no_args_is_help=True)
console = Console()


def _settings(config: Path | None) -> Settings:
    return settings_or_exit(config)


def _database(settings: Settings) -> Database:
    from hearth.store import migrate
    from hearth.store.database import Database

    migrate.upgrade(settings.resolved_database_url)
    return Database(settings.resolved_database_url)


def _store(settings: Settings) -> KeyStore:
    return _database(settings).keys


def _fail(exc: Exception) -> typer.Exit:
    message = exc.message if isinstance(exc, HearthError) else str(exc)
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _key_table(keys: list[ApiKeyView]) -> Table:
    table = Table(
        "name",
        "prefix",
        "status",
        "models",
        "rpm",
        "tpm",
        "concurrent",
        "monthly tokens",
        "expires",
        "last used",
    )
    for k in keys:
        table.add_row(
            k.name,
            k.prefix + "…",
            k.status(),
            ",".join(k.models) if k.models else "all",
            *(str(v) if v else "-" for v in (k.rpm, k.tpm, k.max_concurrent, k.monthly_tokens)),
            k.expires_at.date().isoformat() if k.expires_at else "never",
            k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never",
        )
    return table


@keys_app.command("create")
def keys_create(
    name: str,
    models: Annotated[str | None, typer.Option(help="Comma-separated model ids; default all.")] = None,
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")] = None,
    max_concurrent: Annotated[int | None, typer.Option(min=1, help="Requests at once.")] = None,
    monthly_tokens: Annotated[
        int | None, typer.Option(min=1, help="Token budget per calendar month.")
    ] = None,
    expires_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days.")] = None,
    batch_queued_tokens: Annotated[
        int | None, typer.Option(min=1, help="Input tokens its unfinished batch jobs may hold.")
    ] = None,
    priority: Annotated[
        str, typer.Option(help="Default priority class under overload: interactive, standard or batch.")
    ] = "interactive",
    weight: Annotated[
        float, typer.Option(min=0.001, help="Share among keys of one class under overload.")
    ] = 1.0,
    config: ConfigOpt = None,
) -> None:
    """Create a key. The secret is printed once, alone on the last line."""
    model_list = [m.strip() for m in models.split(",") if m.strip()] if models else None
    try:
        view, secret = _store(_settings(config)).create(
            name,
            models=model_list,
            rpm=rpm,
            tpm=tpm,
            max_concurrent=max_concurrent,
            monthly_tokens=monthly_tokens,
            expires_days=expires_days,
            priority=priority,
            weight=weight,
            batch_queued_tokens=batch_queued_tokens,
        )
    except (HearthError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(_key_table([view]))
    console.print("[yellow]Store this secret now: it cannot be shown again.[/yellow]")
    print(secret)


def _local_name() -> str:
    user = "".join(c if c.isalnum() or c in "-_" else "-" for c in getpass.getuser())[:40] or "me"
    return f"{user}-local"


@keys_app.command("local")
def keys_local(
    name: Annotated[
        str | None, typer.Option(help="Key name (default: USER-local).", show_default=False)
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """This machine user's own key: made on first use, then reused; the secret alone on stdout.

    The secret is kept in DATA_DIR/local-keys/NAME.key (mode 600), so `make chat` and scripts can
    get it again. A key an admin revoked stays revoked: this says so instead of making another.
    """
    settings = _settings(config)
    name = name or _local_name()
    store = _store(settings)
    path = settings.data_dir / "local-keys" / f"{name}.key"
    try:
        saved = path.read_text().strip() if path.is_file() else None
        if saved and store.authenticate(saved) is not None:
            print(saved)
            return
        from hearth.store.errors import KeyNotFound

        try:
            existing = store.get(name)
        except KeyNotFound:
            existing = None
        if existing is not None and existing.revoked:
            console.print(f"[red]the key {name!r} was revoked[/red]; pick another with --name")
            raise typer.Exit(1)
        secret = store.rotate(name) if existing is not None else store.create(name)[1]
    except (HearthError, ValueError) as exc:
        raise _fail(exc) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.replace(path.with_suffix(".tmp"), path)
    Console(stderr=True).print(f"made the key {name!r}; its secret is kept in {path}")
    print(secret)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None) -> None:
    """Every key with its limits and status (never the secrets)."""
    console.print(_key_table(_store(_settings(config)).list()))


@keys_app.command("revoke")
def keys_revoke(name: str, config: ConfigOpt = None) -> None:
    """Revoke a key: it stops working at once (other replicas within seconds)."""
    try:
        view = _store(_settings(config)).revoke(name)
    except (HearthError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(f"revoked {view.name} ({view.prefix}…)")


@keys_app.command("rotate")
def keys_rotate(name: str, config: ConfigOpt = None) -> None:
    """Issue a new secret for a key, keeping its limits; the old secret stops working."""
    try:
        secret = _store(_settings(config)).rotate(name)
    except (HearthError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(f"rotated {name}. Store this secret now: it cannot be shown again.")
    print(secret)


def usage(
    key: Annotated[str | None, typer.Option(help="Only this key's usage.")] = None,
    days: Annotated[int, typer.Option(min=1, help="How many days back.")] = 30,
    config: ConfigOpt = None,
) -> None:
    """Usage from the ledger: totals, per model and per day."""
    from datetime import timedelta

    database = _database(_settings(config))
    try:
        key_id = database.keys.get(key).id if key else None
    except (HearthError, ValueError) as exc:
        raise _fail(exc) from exc
    since = datetime.now(UTC) - timedelta(days=days)
    summary = database.usage(key_id, since)
    totals = Table(
        "requests",
        "prompt tokens",
        "completion tokens",
        "total tokens",
        "images",
        "success",
        "avg ms",
        "p95 ms",
        title=f"usage, last {days} days" + (f", key {key}" if key else ""),
    )
    totals.add_row(
        str(summary.requests),
        str(summary.prompt_tokens),
        str(summary.completion_tokens),
        str(summary.total_tokens),
        str(summary.images),
        f"{summary.success_rate:.1%}" if summary.success_rate is not None else "-",
        f"{summary.avg_latency_ms:.0f}" if summary.avg_latency_ms is not None else "-",
        f"{summary.p95_latency_ms:.0f}" if summary.p95_latency_ms is not None else "-",
    )
    console.print(totals)
    per_model = Table("model", "requests", "prompt", "completion", "total", "images", title="per model")
    for m in summary.models:
        per_model.add_row(
            m.model,
            *(str(v) for v in (m.requests, m.prompt_tokens, m.completion_tokens, m.total_tokens, m.images)),
        )
    console.print(per_model)
    per_day = Table("day", "requests", "tokens", title="per day")
    for d in summary.days:
        per_day.add_row(d.day.isoformat(), str(d.requests), str(d.total_tokens))
    console.print(per_day)


@db_app.command("migrate")
def db_migrate(config: ConfigOpt = None) -> None:
    """Bring the database schema up to date (the server also does this on start)."""
    from hearth.store import migrate

    settings = _settings(config)
    migrate.upgrade(settings.resolved_database_url)
    console.print(f"database at revision {migrate.current_revision(settings.resolved_database_url)}")


@db_app.command("backup")
def db_backup(
    output: Annotated[Path | None, typer.Argument(help="Backup file; default in DATA_DIR/backups.")] = None,
    config: ConfigOpt = None,
) -> None:
    """A consistent copy of the database, taken while the server runs (SQLite's online backup,
    or pg_dump's custom format for PostgreSQL)."""
    from hearth.store import backup

    settings = _settings(config)
    url = settings.resolved_database_url
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".db" if backup.sqlite_file(url) is not None else ".dump"
    target = output or settings.data_dir / "backups" / f"hearth-{stamp}{suffix}"
    try:
        backup.backup(url, target)
    except backup.BackupError as exc:
        raise _fail(exc) from exc
    console.print(f"backup written to {target}")


@db_app.command("restore")
def db_restore(
    backup_file: Annotated[Path, typer.Argument(help="A file from `hearth db backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the database even while a server uses it.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Replace the database with a backup (SQLite, or pg_restore for PostgreSQL), then migrate it.

    Stop the servers first: a restore refuses a database that a running server uses.
    """
    from hearth.store import backup

    settings = _settings(config)
    try:
        backup.restore(settings.resolved_database_url, backup_file, force=force)
    except backup.BackupError as exc:
        raise _fail(exc) from exc
    console.print(f"restored {backup_file}")


@db_app.command("purge-responses")
def db_purge_responses(
    older_than_days: Annotated[
        float, typer.Option(min=0, help="Delete finished stored responses created before this many days ago.")
    ],
    config: ConfigOpt = None,
) -> None:
    """Delete old stored responses (/v1/responses) now; a running server also deletes those
    older than HEARTH_RESPONSES_RETENTION_DAYS, hourly."""
    settings = _settings(config)
    deleted = _database(settings).responses.purge(datetime.now(UTC) - timedelta(days=older_than_days))
    console.print(f"deleted {deleted} stored responses older than {older_than_days:g} days")
