"""The ``semisup`` command line: parses arguments, calls the library, prints with rich.

Every user error is a :class:`~semisup.errors.SemisupError`, printed as one
line on stderr with exit code 2; ``semisup --debug ...`` adds the traceback.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from semisup.errors import SemisupError

app = typer.Typer(help="Semi-supervised genre and shot-type classifiers from a few labels and many "
                       "unlabeled trailers.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)
data_app = typer.Typer(help="Datasets: build the demo.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
errors = Console(stderr=True)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")) -> None:
    """semisup: semi-supervised learning for video understanding."""


@app.command()
def run(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe TOML, e.g. recipes/sesemi.toml or RUN_DIR/config.toml."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<name>-<timestamp>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a killed run from its last checkpoint."),
) -> None:
    """Train a model as a recipe says, then evaluate its best checkpoint on test."""
    from semisup.train.progress import RichProgress
    from semisup.train.run import resume_run, start_run

    progress = RichProgress(errors)
    if resume is not None:
        if recipe is not None or overrides or out is not None:
            raise SemisupError("--resume RUN_DIR takes no recipe, --set or --out (the run keeps its config.toml)")
        result = resume_run(resume, progress=progress)
    elif recipe is None:
        raise SemisupError("run: give a recipe (e.g. recipes/sesemi.toml) or --resume RUN_DIR")
    else:
        result = start_run(recipe, overrides, out, progress=progress)
    print_report(result.report)
    console.print(f"run directory: [bold]{result.run_dir}[/]")


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Finished run directories."),
    task: Optional[str] = typer.Option(None, help="Task to compare (default: the first)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table (for READMEs)."),
) -> None:
    """Compare finished runs: test mAP and micro-F1, mean ± std over seeds, per recipe name."""
    from semisup.evaluate.compare import compare_runs, markdown_table

    groups = compare_runs(runs, task)
    if markdown:
        print(markdown_table(groups))
        return
    table = Table(title=f"test {groups[0].runs[0].task}: mean ± std over seeds")
    for column in ("recipe", "seeds", "test mAP", "test micro-F1", "rule (val)", "train time"):
        table.add_column(column, justify="left" if column in ("recipe", "rule (val)") else "right")
    for g in groups:
        table.add_row(g.name, str(len(g.runs)), f"{g.mean('test_map'):.3f} ± {g.std('test_map'):.3f}",
                      f"{g.mean('test_f1'):.3f} ± {g.std('test_f1'):.3f}",
                      ", ".join(sorted({r.rule for r in g.runs})), f"{g.mean('train_seconds') / 60:.1f} min")
    console.print(table)


@data_app.command("demo")
def data_demo(
    out: Path = typer.Argument(..., help="Folder to write (must not exist or be empty)."),
    seed: int = typer.Option(0, help="Same seed, same dataset."),
    scale: float = typer.Option(1.0, help="Multiply every split's size (0.1 for a tiny copy)."),
) -> None:
    """Write the built-in demo trailer dataset in the generic folder format."""
    from semisup.data.demo import write_demo

    if scale <= 0:
        raise SemisupError(f"--scale: expected a positive number, got {scale}")
    with errors.status("rendering demo trailers..."):
        summary = write_demo(out, seed=seed, scale=scale)
    table = Table(title=f"demo dataset: {summary.trailers} trailers, {summary.frames} frames")
    table.add_column("genre")
    table.add_column("trailers", justify="right")
    for genre, count in summary.genre_counts.items():
        table.add_row(genre, str(count))
    console.print(table)
    console.print("splits: " + ", ".join(f"{k} {v}" for k, v in summary.splits.items()))
    console.print(f"written to [bold]{summary.root}[/]")


def print_report(report: dict[str, Any]) -> None:
    """A table per task of the test split (report.json holds every number)."""
    for task, metrics in report["splits"]["test"].items():
        where = f"({metrics['samples']} samples, checkpoint {report['checkpoint']} epoch {_fmt(report.get('epoch'))})"
        if "accuracy" in metrics:  # multi-class
            table = Table(title=f"test: {task}  accuracy {_fmt(metrics['accuracy'])}  macro-F1 "
                                f"{_fmt(metrics['macro_f1'])}  {where}")
            for column in ("class", "precision", "recall", "F1", "AP", "support"):
                table.add_column(column, justify="left" if column == "class" else "right")
            for label, scores in metrics["per_class"].items():
                table.add_row(label, _fmt(scores["precision"]), _fmt(scores["recall"]), _fmt(scores["f1"]),
                              _fmt(metrics["ap"][label]), str(metrics["support"][label]))
            console.print(table)
            continue
        table = Table(title=f"test: {task}  mAP {_fmt(metrics['mAP'])}  {where}")
        table.add_column("rule")
        columns = [("micro", "precision"), ("micro", "recall"), ("micro", "f1"), ("macro", "f1"),
                   ("samples", "f1")]
        for avg, metric in columns:
            table.add_column(f"{avg} {metric if metric == 'f1' else metric[0]}".replace("f1", "F1"), justify="right")
        for rule, scores in metrics["rules"].items():
            table.add_row(rule, *(_fmt(scores[avg][metric]) for avg, metric in columns))
        console.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except SemisupError as exc:
        if debug:
            traceback.print_exc()
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted (a run continues with `semisup run --resume RUN_DIR`)")
        sys.exit(130)


if __name__ == "__main__":
    main()
