"""What ``hearth chat`` and ``hearth analyze`` share: options, the client, friendly errors, retries.

Nothing raises past a command: every ``HearthAPIError`` becomes a message with what to do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hearth.clients import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailed,
    HearthAPIError,
    HearthClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

T = TypeVar("T")

BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="HEARTH_BASE_URL",
        help="Server URL, with or without /v1 (default: http://127.0.0.1:8000).",
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="HEARTH_API_KEY", help="API key (hk-...).", show_default=False),
]
MAX_RETRIES = 3
MAX_RETRY_WAIT_S = 60.0


def make_client(base_url: str | None, api_key: str | None, console: Console) -> HearthClient:
    try:
        return HearthClient(base_url, api_key)
    except ValueError as exc:  # a malformed base URL
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc


def explain(exc: HearthAPIError, client: HearthClient) -> str:
    """One friendly, Rich-escaped explanation of an error, with what to do about it."""
    server = client.endpoint.server
    message = escape(exc.message)
    if isinstance(exc, ConnectionFailed):
        return (
            f"Cannot reach the server: {message}.\nIs `hearth serve` running there? "
            "Point --base-url or HEARTH_BASE_URL at your server."
        )
    if isinstance(exc, AuthenticationError):
        key = client.endpoint.api_key
        how = "Create one with `hearth keys create NAME` and `export HEARTH_API_KEY=hk-...` (or pass --api-key)."
        if not key:
            return (
                f"The server at {server} needs an API key, and none was sent: "
                f"HEARTH_API_KEY is not set and --api-key was not given.\n{how}"
            )
        return (
            f"The server at {server} rejected the API key {escape(key[: min(10, len(key) // 2)])}… from --api-key / "
            f"HEARTH_API_KEY ({message}): it is invalid, revoked or expired.\n{how}"
        )
    if isinstance(exc, PermissionDeniedError):
        return f"This API key may not do that: {message}."
    if isinstance(exc, NotFoundError):
        hint = (
            " See them with /model in `hearth chat`, or GET /v1/models."
            if exc.code == "model_not_found"
            else ""
        )
        return f"Not found: {message}.{hint}"
    if isinstance(exc, RateLimitError):
        wait = f" It resets in {human_duration(exc.retry_after)}." if exc.retry_after else ""
        return f"Rate limited: {message}.{wait}"
    if isinstance(exc, ServerError):
        status = f"HTTP {exc.status}" + (f", {exc.code}" if exc.code else "")
        return f"The server failed ({escape(status)}): {message}"
    if isinstance(exc, BadRequestError):
        return f"The server refused the request: {message}"
    return message


def with_retries(call: Callable[[], T], say: Callable[[str], None]) -> T:
    """``call()``, waiting out a 429 (or a 503) for its Retry-After and retrying, a bounded number of times."""
    for attempt in range(1, MAX_RETRIES + 1):
        try:
            return call()
        except (RateLimitError, ServerError) as exc:
            wait = exc.retry_after
            retryable = isinstance(exc, RateLimitError) or exc.status == 503
            if not retryable or wait is None or wait > MAX_RETRY_WAIT_S or attempt == MAX_RETRIES:
                raise
            what = "rate limited" if isinstance(exc, RateLimitError) else "the server is busy"
            say(
                f"[yellow]{what} ({escape(exc.message)}); waiting {human_duration(wait)} as the server's "
                f"Retry-After asks, then retrying ({attempt}/{MAX_RETRIES - 1})…[/yellow]"
            )
            time.sleep(max(wait, 0.05))
    raise AssertionError("unreachable")


def default_chat_model(client: HearthClient) -> str:
    """The first chat model the server lists (or its first model, if it does not say kinds)."""
    models = client.list_models()
    chat = [m for m in models if m.kind == "chat"] or [m for m in models if m.kind is None]
    if not chat:
        raise NotFoundError("the server lists no chat model; pass --model", code="model_not_found")
    return chat[0].id


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{round(seconds, 1):g}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@contextlib.contextmanager
def friendly_errors(client: HearthClient, console: Console) -> Iterator[None]:
    """Turn any client error into its explanation and exit 1; Ctrl-C exits 130, quietly."""
    try:
        yield
    except HearthAPIError as exc:
        console.print("[red]" + explain(exc, client) + "[/red]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: still a message, never a traceback
        console.print(f"[red]unexpected error: {escape(type(exc).__name__)}: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
