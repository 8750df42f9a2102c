"""``semisup recipe keys``: the recipe key reference in the terminal, read from the schema."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.padding import Padding

from semisup.cli.app import app, console
from semisup.errors import SemisupError

recipe_app = typer.Typer(help="Recipes: the keys a recipe may set.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("keys")
def keys(section: Optional[str] = typer.Argument(None, help="One section (data, tasks, model, ...); "
                                                          "default: every section."),
         markdown: bool = typer.Option(False, "--markdown", help="Print the docs site's Markdown page.")) -> None:
    """Every key of a recipe (or of SECTION): type, default, range and what it does."""
    from semisup.config.reference import key_rows, reference_markdown, section_header, sections

    names = sections()
    if section is not None and section not in names:
        raise SemisupError(f"recipe keys: no section {section!r}; the sections are {', '.join(names)}")
    if markdown:
        typer.echo(reference_markdown())  # as is: no rich markup, emoji codes or wrapping
        return
    for name in names if section is None else [section]:
        console.print(f"[bold]{escape(section_header(name))}[/]")
        for row in key_rows(name):
            bound = f"  ({row.range})" if row.range else ""
            console.print(f"  [cyan]{escape(row.key)}[/] = {escape(row.default)}  [dim]{escape(row.type)}"
                          f"{escape(bound)}[/]", highlight=False)
            console.print(Padding(escape(row.doc), (0, 0, 0, 6)), highlight=False)
        console.print()
