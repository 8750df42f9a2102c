"""The typer application and the consoles every command prints to."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

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


def multiclass_table(title: str, metrics: dict[str, Any]) -> Table:
    """Per class precision, recall, F1, AP and support of a multi-class task's metrics
    (:func:`semisup.evaluate.report.multiclass_metrics`)."""
    table = Table(title=title)
    for column in ("class", "precision", "recall", "F1", "AP", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label, scores in metrics["per_class"].items():
        table.add_row(label, fmt(scores["precision"]), fmt(scores["recall"]), fmt(scores["f1"]),
                      fmt(metrics["ap"][label]), str(metrics["support"][label]))
    return table


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell ("-" for missing)."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
