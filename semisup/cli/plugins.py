"""``semisup pretext list``, ``semisup aggregator list``, ``semisup consistency list``: what the
plug-in registries hold."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from semisup.cli.app import app, console
from semisup.registry import CatalogueEntry

pretext_app = typer.Typer(help="Pretext tasks: built-in and plug-ins.", no_args_is_help=True)
app.add_typer(pretext_app, name="pretext")
aggregator_app = typer.Typer(help="Temporal aggregators: built-in and plug-ins.", no_args_is_help=True)
app.add_typer(aggregator_app, name="aggregator")
consistency_app = typer.Typer(help="Consistency methods (FixMatch, Mean Teacher): built-in and plug-ins.",
                              no_args_is_help=True)
app.add_typer(consistency_app, name="consistency")


@pretext_app.command("list")
def list_tasks() -> None:
    """Every pretext task found: built-ins and installed plug-ins (entry points), with a one-line description."""
    from semisup.pretext import pretext_catalogue

    print_catalogue("pretext tasks (use a name, or a package.module:Class path, in [[pretext]] name)",
                    pretext_catalogue())


@aggregator_app.command("list")
def list_aggregators() -> None:
    """Every temporal aggregator found: built-ins and installed plug-ins (entry points)."""
    from semisup.models.aggregators import AGGREGATORS

    print_catalogue("temporal aggregators (use a name, or a package.module:Class path, as a task's aggregator)",
                    AGGREGATORS.catalogue())


@consistency_app.command("list")
def list_consistency() -> None:
    """Every consistency method found: built-ins and installed plug-ins (entry points)."""
    from semisup.objectives import consistency_catalogue

    print_catalogue("consistency methods (use a name, or a package.module:Class path, in [[consistency]] name)",
                    consistency_catalogue())


def print_catalogue(title: str, entries: list[CatalogueEntry]) -> None:
    """A table of registry entries; broken plug-ins in red."""
    table = Table(title=escape(title))
    for column in ("name", "source", "description"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(entry.name, entry.source, entry.description,
                      style="red" if entry.description.startswith("BROKEN") else None)
    console.print(table)
