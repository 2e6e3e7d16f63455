"""``hearth transcribe FILE``: speech to text from the terminal, with a progress bar for long files.

The transcript streams to stdout as it is decoded (so it pipes into a file); the bar, on
stderr, follows how far into the audio the transcript has got (Hearth's ``audio_end`` and
``audio_duration`` on each stream event).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from hearth.cli.client_helpers import ApiKeyOpt, BaseUrlOpt, friendly_errors, make_client


def transcribe(
    audio: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="An audio file: wav, mp3, m4a, ogg, webm, flac."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", envvar="HEARTH_TRANSCRIBE_MODEL", help="Speech model (default: whisper-1)."
        ),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            "-l",
            envvar="HEARTH_TRANSCRIBE_LANGUAGE",
            help="ISO-639-1 code (default: detected).",
        ),
    ] = None,
    translate: Annotated[
        bool,
        typer.Option(
            "--translate", envvar="HEARTH_TRANSCRIBE_TRANSLATE", help="Translate into English instead."
        ),
    ] = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Write the transcript of an audio file (or its English translation) to stdout."""
    err = Console(stderr=True)
    client = make_client(base_url, api_key, err)
    progress = Progress(
        TextColumn(f"[bold]{audio.name}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with client, friendly_errors(client, err), progress:
        task = progress.add_task("transcribing", total=None)
        events = client.transcribe_stream(audio, model=model, language=language, translate=translate)
        wrote = False
        for event in events:
            if event.get("type") == "transcript.text.delta":
                progress.update(task, total=event.get("audio_duration"), completed=event.get("audio_end", 0))
                sys.stdout.write(event.get("delta", ""))
                sys.stdout.flush()
                wrote = True
            elif event.get("type") == "transcript.text.done" and not wrote:
                sys.stdout.write(event.get("text", ""))
        sys.stdout.write("\n")
