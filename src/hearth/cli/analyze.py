"""``hearth analyze IMAGE``: classify an image file or URL, or (``--prompt``) ask a chat model about it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hearth.cli.client_helpers import (
    ApiKeyOpt,
    BaseUrlOpt,
    default_chat_model,
    friendly_errors,
    make_client,
    with_retries,
)
from hearth.clients import BadRequestError, Classification, HearthClient

_EIGHTHS = " ▏▎▍▌▋▊▉█"
BAR_WIDTH = 30


def bar(fraction: float, width: int = BAR_WIDTH) -> Text:
    """A horizontal bar ``fraction`` of ``width`` cells long, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return Text("█" * full + (_EIGHTHS[part] if part else ""), style="green")


def ranking(result: Classification, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("label")
    table.add_column("confidence", width=BAR_WIDTH, no_wrap=True)
    table.add_column("%", justify="right")
    for rank, p in enumerate(result.predictions, 1):
        table.add_row(str(rank), escape(p.label), bar(p.confidence), f"{p.confidence * 100:.1f}%")
    return table


def _ask(client: HearthClient, image: str, prompt: str, model: str | None, max_tokens: int | None) -> None:
    """Send the image as an OpenAI ``image_url`` part to the chat route and stream the answer."""
    err = Console(stderr=True)
    part = client.image_part(image)
    chat_model = model or default_chat_model(client)
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}, part]}]
    try:
        stream = with_retries(
            lambda: client.chat_stream(messages, model=chat_model, max_tokens=max_tokens), err.print
        )
    except BadRequestError as exc:
        if exc.code != "unsupported_content" and "image" not in exc.message:
            raise
        err.print(
            f"[red]The model {escape(chat_model)} cannot look at images: the server said "
            f"“{escape(exc.message)}”.[/red]\nNo answer was made up. Use --model with a chat model that "
            f"accepts images, or drop --prompt to classify the image: hearth analyze {escape(image)}"
        )
        raise typer.Exit(1) from None
    with stream:
        for delta in stream:
            sys.stdout.write(delta)
            sys.stdout.flush()
    sys.stdout.write("\n")


def analyze(
    image: Annotated[str, typer.Argument(help="An image file, or an http(s) URL (downloaded here).")],
    top_k: Annotated[
        int,
        typer.Option("--top-k", "-k", envvar="HEARTH_ANALYZE_TOP_K", min=1, max=1000, help="Labels shown."),
    ] = 5,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            envvar="HEARTH_ANALYZE_MODEL",
            help="Classifier (default: the server's first); with --prompt, the chat model.",
        ),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            "-p",
            envvar="HEARTH_ANALYZE_PROMPT",
            help="Ask a chat model that accepts images about it.",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(envvar="HEARTH_ANALYZE_MAX_TOKENS", min=1, help="Longest answer to --prompt."),
    ] = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Classify an image (a ranked table of labels), or ask a chat model about it with --prompt."""
    console = Console()
    client = make_client(base_url, api_key, Console(stderr=True))
    with client, friendly_errors(client, Console(stderr=True)):
        if prompt is not None:
            _ask(client, image, prompt, model, max_tokens)
            return
        result = with_retries(lambda: client.classify(image, model=model, top_k=top_k), console.print)
        name = image.rsplit("/", 1)[-1] or image
        console.print(ranking(result, f"{escape(name)} · {escape(result.model)}"))
