"""The typer application and the consoles every command prints to."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

app = typer.Typer(help="Semi-supervised genre and shot-type classifiers from a few labels and many "
                       "unlabeled trailers.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)
data_app = typer.Typer(help="Datasets: the demo, video extraction, splits, inspection.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
errors = Console(stderr=True)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")) -> None:
    """semisup: semi-supervised learning for video understanding."""


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell ("-" for missing)."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
