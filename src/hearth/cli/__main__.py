"""``python -m hearth.cli``: the same as the ``hearth`` command."""

from hearth.cli import app

app()
