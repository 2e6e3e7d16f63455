"""``hearth chat``: a terminal chatbot on any OpenAI-compatible server, streamed with Rich.

The options, the friendly error messages and the Retry-After handling here are shared with
``hearth analyze``. Nothing raises past the command: every ``HearthAPIError`` becomes a message.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from hearth.cli.client_helpers import (
    ApiKeyOpt,
    BaseUrlOpt,
    default_chat_model,
    explain,
    friendly_errors,
    make_client,
    with_retries,
)
from hearth.clients import ChatStream, HearthAPIError, HearthClient

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
