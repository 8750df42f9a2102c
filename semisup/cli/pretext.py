"""``semisup pretext list``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from semisup.cli.app import app, console

pretext_app = typer.Typer(help="Pretext tasks: built-in and plug-ins.", no_args_is_help=True)
app.add_typer(pretext_app, name="pretext")


@pretext_app.command("list")
def list_tasks() -> None:
    """Every pretext task found: built-ins and installed plug-ins (entry points), with a one-line description."""
    from semisup.pretext import pretext_catalogue

    table = Table(title=escape("pretext tasks (use a name, or a package.module:Class path, in [[pretext]] name)"))
    for column in ("name", "source", "description"):
        table.add_column(column, overflow="fold")
    for entry in pretext_catalogue():
        table.add_row(entry.name, entry.source, entry.description,
                      style="red" if entry.description.startswith("BROKEN") else None)
    console.print(table)
