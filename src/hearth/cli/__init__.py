"""The ``hearth`` command line (Typer + Rich), one module per command group.

Every option also reads a ``HEARTH_*`` variable.
"""

from __future__ import annotations

import typer

# Imported under other names: ``hearth.cli.chat`` and the rest stay the modules, not the functions.
from hearth.cli.analyze import analyze as analyze_command
from hearth.cli.batch import batch_app
from hearth.cli.bench import bench as bench_command
from hearth.cli.chat import chat as chat_command
from hearth.cli.doctor import doctor as doctor_command
from hearth.cli.models import models_app
from hearth.cli.serve import serve as serve_command
from hearth.cli.store import db_app, keys_app
from hearth.cli.store import usage as usage_command
from hearth.cli.transcribe import transcribe as transcribe_command

app = typer.Typer(help="Hearth: your own AI provider.", no_args_is_help=True, add_completion=False)
app.command("serve")(serve_command)
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.command("usage")(usage_command)
app.command("doctor")(doctor_command)
app.command("bench")(bench_command)
app.command("chat")(chat_command)
app.command("analyze")(analyze_command)
app.command("transcribe")(transcribe_command)
app.add_typer(batch_app, name="batch")
