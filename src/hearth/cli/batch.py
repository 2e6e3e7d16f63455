"""``hearth batch``: batch jobs from the terminal, on the server's OpenAI Batch API.

``submit FILE.jsonl --endpoint /v1/chat/completions`` uploads the file, starts the batch and
follows it with a progress bar (``--no-wait`` returns at once); ``list``, ``status ID``,
``results ID`` (the output lines, then the error lines, as JSONL on stdout) and ``cancel ID``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hearth.cli.client_helpers import ApiKeyOpt, BaseUrlOpt, friendly_errors, make_client
from hearth.clients import HearthClient

batch_app = typer.Typer(help="Batch jobs: submit a JSONL file of requests, follow it, fetch its results.")
ENDED = ("completed", "failed", "expired", "cancelled")


def _counts(batch: dict[str, Any]) -> tuple[int, int, int]:
    counts = batch.get("request_counts") or {}
    return int(counts.get("total", 0)), int(counts.get("completed", 0)), int(counts.get("failed", 0))


def _follow(client: HearthClient, batch_id: str, err: Console) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        task = progress.add_task(f"{batch_id}: validating", total=None)
        while True:
            batch: dict[str, Any] = client.call("GET", f"batches/{batch_id}").json()
            total, completed, failed = _counts(batch)
            progress.update(task, total=total or None, completed=completed + failed,
                            description=f"{batch_id}: {batch['status']}")  # fmt: skip
            if batch["status"] in ENDED:
                return batch
            time.sleep(0.5)


@batch_app.command("submit")
def submit(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A JSONL file of requests.")
    ],
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            "-e",
            envvar="HEARTH_BATCH_ENDPOINT",
            help="/v1/chat/completions, /v1/completions, /v1/embeddings or /v1/responses.",
        ),
    ] = "/v1/chat/completions",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the batch until it ends.")] = True,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Upload FILE, start a batch on it, and follow it to the end."""
    err = Console(stderr=True)
    client = make_client(base_url, api_key, err)
    with client, friendly_errors(client, err):
        uploaded = client.call(
            "POST", "files", files={"file": (file.name, file.read_bytes())}, data={"purpose": "batch"}
        )
        body = {"input_file_id": uploaded.json()["id"], "endpoint": endpoint, "completion_window": "24h"}
        batch = client.call("POST", "batches", json=body).json()
        err.print(f"batch [bold]{batch['id']}[/bold] started on {endpoint}")
        if wait:
            batch = _follow(client, batch["id"], err)
            total, completed, failed = _counts(batch)
            err.print(f"{batch['status']}: {completed} of {total} succeeded, {failed} failed")
            for error in (batch.get("errors") or {}).get("data") or []:
                err.print(f"  line {error.get('line')}: {error.get('message')}")
        print(batch["id"])
        if batch["status"] == "failed":
            raise typer.Exit(1)


@batch_app.command("list")
def list_batches(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Your batches, newest first."""
    err = Console(stderr=True)
    client = make_client(base_url, api_key, err)
    with client, friendly_errors(client, err):
        table = Table("id", "endpoint", "status", "done", "failed", "total", title="batches")
        for batch in client.call("GET", "batches", params={"limit": 100}).json()["data"]:
            total, completed, failed = _counts(batch)
            table.add_row(
                batch["id"], batch["endpoint"], batch["status"], str(completed), str(failed), str(total)
            )
        Console().print(table)


@batch_app.command("status")
def status(batch_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """One batch, as the API returns it (JSON)."""
    err = Console(stderr=True)
    client = make_client(base_url, api_key, err)
    with client, friendly_errors(client, err):
        sys.stdout.write(client.call("GET", f"batches/{batch_id}").text + "\n")


@batch_app.command("results")
def results(batch_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """The output lines, then the error lines, as JSONL on stdout."""
    err = Console(stderr=True)
    client = make_client(base_url, api_key, err)
    with client, friendly_errors(client, err):
        batch = client.call("GET", f"batches/{batch_id}").json()
        if batch["status"] not in ENDED:
            err.print(
                f"[yellow]batch {batch_id} is {batch['status']}: its results come when it ends[/yellow]"
            )
            raise typer.Exit(1)
        for field in ("output_file_id", "error_file_id"):
            if batch.get(field):
                sys.stdout.write(client.call("GET", f"files/{batch[field]}/content").text)


@batch_app.command("cancel")
def cancel(batch_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Stop a batch: lines not yet run are not run."""
    err = Console(stderr=True)
    client = make_client(base_url, api_key, err)
    with client, friendly_errors(client, err):
        batch = client.call("POST", f"batches/{batch_id}/cancel").json()
        err.print(f"batch {batch_id}: {batch['status']}")
