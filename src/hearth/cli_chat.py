"""``hearth chat``: a terminal chatbot on any OpenAI-compatible server, streamed with Rich.

The options, the friendly error messages and the Retry-After handling here are shared with
``hearth analyze``. Nothing raises past the command: every ``HearthAPIError`` becomes a message.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hearth.clients import (
    AuthenticationError,
    BadRequestError,
    ChatStream,
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

HELP = (
    "Chat with a model in your terminal; the answer streams in as it is generated.\n\n"
    "Without PROMPT and with a terminal, it is interactive. With PROMPT, or with text piped on "
    "stdin (echo hi | hearth chat -m MODEL), it prints one answer and exits.\n\n"
    "Interactive commands: /system TEXT sets the system prompt (/system alone clears it); "
    "/model ID switches model (/model alone lists them); /clear forgets the conversation; "
    "/save FILE writes it as JSON; /usage shows this key's usage and budget; /help; "
    "/quit or Ctrl-D leaves. Start a message with // to send a leading slash.\n\n"
    "Multi-line input: end a line with a backslash to continue on the next line, or put the "
    'text between two lines of three double quotes (""").'
)

COMMANDS_HELP = """[bold]/system TEXT[/]   set the system prompt ([bold]/system[/] alone clears it)
[bold]/model ID[/]      switch model ([bold]/model[/] alone lists the chat models)
[bold]/clear[/]         forget the conversation (the system prompt stays)
[bold]/save FILE[/]     write the conversation as JSON
[bold]/usage[/]         this API key's usage and budget
[bold]/quit[/]          leave (or Ctrl-D)
Multi-line: end a line with [bold]\\[/] to continue it, or enclose text in lines of [bold]\"\"\"[/]."""


# --- shared with `hearth analyze` -----------------------------------------------------------------


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
        wait = f" It resets in {_human(exc.retry_after)}." if exc.retry_after else ""
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
                f"[yellow]{what} ({escape(exc.message)}); waiting {_human(wait)} as the server's "
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


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{round(seconds, 1):g}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


# --- the conversation -------------------------------------------------------------------------------


@dataclass
class Conversation:
    model: str
    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        """The whole history, sent with every turn."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.turns

    def save(self, path: Path, base_url: str) -> None:
        document = {
            "model": self.model,
            "base_url": base_url,
            "system": self.system,
            "messages": self.messages(),
            "saved_at": datetime.now(UTC).isoformat(),
        }
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


@dataclass
class Session:
    client: HearthClient
    convo: Conversation
    console: Console
    params: dict[str, Any]

    def answer(self) -> None:
        """Stream one answer to the conversation's last user turn, then show model and usage."""
        console = self.console
        console.print(f"[bold green]{escape(self.convo.model)}>[/] ", end="")
        started = time.perf_counter()
        stream: ChatStream | None = None
        try:
            stream = with_retries(
                lambda: self.client.chat_stream(self.convo.messages(), model=self.convo.model, **self.params),
                lambda text: console.print("\n" + text),
            )
            for delta in stream:
                console.print(delta, end="", markup=False, highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            console.print("\n[yellow]interrupted: this turn was dropped[/yellow]")
            self.convo.turns.pop()
            return
        except HearthAPIError as exc:
            console.print("\n[red]" + explain(exc, self.client) + "[/red]")
            self.convo.turns.pop()
            return
        finally:
            if stream is not None:
                stream.close()
        console.print()
        self.convo.turns.append({"role": "assistant", "content": stream.text})
        console.print(usage_line(stream, self.convo.model, time.perf_counter() - started), style="dim")

    def command(self, line: str) -> bool:
        """Run one /command; False means quit."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        console = self.console
        if name in ("/quit", "/exit", "/q"):
            return False
        if name == "/help":
            console.print(COMMANDS_HELP)
        elif name == "/system":
            self.convo.system = arg or None
            console.print("[dim]system prompt " + ("set" if arg else "cleared") + "[/dim]")
        elif name == "/model":
            self._switch_model(arg)
        elif name == "/clear":
            self.convo.turns.clear()
            console.print("[dim]conversation cleared (the system prompt stays)[/dim]")
        elif name == "/save":
            self._save(arg)
        elif name == "/usage":
            self._show_usage()
        else:
            console.print(f"[red]unknown command {escape(name)}[/red]; /help lists them")
        return True

    def _switch_model(self, model_id: str) -> None:
        try:
            if not model_id:
                models = [m for m in self.client.list_models() if m.kind in ("chat", None)]
                for m in models:
                    mark = "*" if m.id == self.convo.model else " "
                    self.console.print(f" {mark} {escape(m.id)}", highlight=False)
                return
            model = self.client.get_model(model_id)
        except HearthAPIError as exc:
            self.console.print("[red]" + explain(exc, self.client) + "[/red]")
            return
        if model.kind not in ("chat", None):
            self.console.print(
                f"[red]{escape(model.id)} is not a chat model (its kind is {escape(model.kind)})[/red]"
            )
            return
        self.convo.model = model.id
        self.console.print(f"[dim]model: {escape(model.id)}[/dim]")

    def _save(self, name: str) -> None:
        if not name:
            self.console.print("[red]usage: /save FILE[/red]")
            return
        path = Path(name).expanduser()
        try:
            self.convo.save(path, self.client.base_url)
        except OSError as exc:
            self.console.print(
                f"[red]could not save to {escape(str(path))}: {escape(exc.strerror or str(exc))}[/red]"
            )
            return
        self.console.print(f"[dim]saved {len(self.convo.messages())} messages to {escape(str(path))}[/dim]")

    def _show_usage(self) -> None:
        try:
            report = self.client.usage()
        except HearthAPIError as exc:
            self.console.print("[red]" + explain(exc, self.client) + "[/red]")
            return
        budget = report.budget
        left = (
            ""
            if budget is None or budget.remaining is None
            else f", {budget.remaining:,} tokens left this month"
        )
        self.console.print(
            f"[dim]this key: {report.requests:,} requests, {report.total_tokens:,} tokens{left}[/dim]"
        )


def usage_line(stream: ChatStream, model: str, seconds: float) -> str:
    parts = [stream.model or model]
    usage = stream.usage
    if usage is None:
        parts.append("usage not reported")
    else:
        parts.append(
            f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion = {usage.total_tokens} tokens"
        )
        if seconds > 0 and usage.completion_tokens:
            parts.append(f"{usage.completion_tokens / seconds:.1f} tok/s")
    parts.append(f"finish: {stream.finish_reason or '?'}")
    return "  " + " · ".join(parts)


def read_message(ask: Callable[[str], str]) -> str:
    """One message: a line, lines joined by a trailing backslash, or a block between \"\"\" lines."""
    first = ask("[bold cyan]you>[/] ")
    if first.strip().startswith('"""'):
        rest = first.strip()[3:]
        if rest.endswith('"""'):
            return rest[:-3]
        lines = [rest] if rest else []
        while True:
            line = ask("[dim]...[/] ")
            if line.rstrip().endswith('"""'):
                lines.append(line.rstrip()[:-3])
                return "\n".join(lines).strip("\n")
            lines.append(line)
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(ask("[dim]...[/] "))
    return "\n".join(lines)


def _interactive(session: Session) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    console = session.console
    console.print(
        f"[bold]Hearth chat[/] · {escape(session.convo.model)} at {escape(session.client.base_url)} · "
        "/help for commands, /quit to leave"
    )
    while True:
        try:
            text = read_message(console.input)
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not text.strip():
            continue
        if text.startswith("/") and not text.startswith("//"):
            if not session.command(text):
                return
            continue
        session.convo.turns.append({"role": "user", "content": text.removeprefix("/")})
        session.answer()


def _one_shot(session: Session, prompt: str) -> None:
    err = Console(stderr=True)
    session.convo.turns.append({"role": "user", "content": prompt})
    stream = with_retries(
        lambda: session.client.chat_stream(
            session.convo.messages(), model=session.convo.model, **session.params
        ),
        err.print,
    )
    wrote = False
    try:
        for delta in stream:
            sys.stdout.write(delta)
            sys.stdout.flush()
            wrote = True
    finally:
        if wrote:
            sys.stdout.write("\n")
            sys.stdout.flush()


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


def chat(
    prompt: Annotated[
        str | None, typer.Argument(help="Ask this once, print the answer and exit.", show_default=False)
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            envvar="HEARTH_CHAT_MODEL",
            help="Model id (default: the server's first chat model).",
        ),
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", envvar="HEARTH_CHAT_SYSTEM", help="System prompt.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(envvar="HEARTH_CHAT_MAX_TOKENS", min=1, help="Longest answer, in tokens.")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(envvar="HEARTH_CHAT_TEMPERATURE", min=0.0, max=2.0, help="Sampling temperature."),
    ] = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    interactive = prompt is None and sys.stdin.isatty()
    if prompt is None and not interactive:
        prompt = sys.stdin.read().strip()
        if not prompt:
            Console(stderr=True).print("[red]nothing to send: stdin was empty[/red]")
            raise typer.Exit(2)
    console = Console() if interactive else Console(stderr=True)
    client = make_client(base_url, api_key, console)
    with client, friendly_errors(client, console):
        convo = Conversation(model or default_chat_model(client), system)
        params = {"max_tokens": max_tokens, "temperature": temperature}
        session = Session(client, convo, console, params)
        if prompt is None:
            _interactive(session)
        else:
            _one_shot(session, prompt)


chat.__doc__ = HELP
