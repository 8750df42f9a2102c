"""``semisup select``, ``semisup select-simulate`` and ``semisup strategy list``: choose what to label next."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from semisup.cli.app import app, console, errors
from semisup.errors import SemisupError
from semisup.label.studio import LOCAL_FILES

strategy_app = typer.Typer(help="Selection strategies for `semisup select`: built-in and plug-ins.",
                           no_args_is_help=True)
app.add_typer(strategy_app, name="strategy")

STRATEGY_HELP = "random, uncertainty, diversity, mix or rare (`semisup strategy list`), or a package.module:Class."
OPTION_HELP = "A strategy option, key=value (repeat): e.g. reduce=max, measure=entropy, rare=1, candidates=4."


def build_strategy(name: str, options: List[str]):
    """The strategy ``name`` with its ``--option`` values (one-line errors for unknown keys or values)."""
    from semisup.config.load import build_options, parse_assignments
    from semisup.selection.strategies import get_strategy

    cls = get_strategy(name)
    return cls(build_options(cls.Options, parse_assignments(options), name, "--option"))


@app.command("select")
def select(
    run_dir: Path = typer.Argument(..., help="A trained run directory."),
    budget: int = typer.Option(..., "--budget", help="How many trailers to select."),
    strategy: str = typer.Option("mix", "--strategy", help=STRATEGY_HELP),
    option: List[str] = typer.Option([], "--option", help=OPTION_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="The CSV to write (default RUN_DIR/select.csv)."),
    checkpoint: str = typer.Option("best", help="best, last or a checkpoint file."),
    task: Optional[str] = typer.Option(None, "--task", help="Embeddings for diversity from this task's "
                                                             "aggregator (default: every task's)."),
    seed: int = typer.Option(0, help="Seed of random choices."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    fmt: str = typer.Option("csv", "--format", help="csv, or label-studio: also a Label Studio import file "
                                                    "(tasks with the model's guesses) and labeling config."),
    media_url: str = typer.Option(LOCAL_FILES, "--media-url", help="label-studio: prefix of the media URLs "
                                                                  "(paths relative to the dataset root follow)."),
    frames: int = typer.Option(12, "--frames", min=1, help="label-studio: frame URLs per trailer."),
) -> None:
    """Rank the unlabeled trailers and write the BUDGET to label next, with the model's guesses, to a CSV."""
    from semisup.io import refuse_existing
    from semisup.label.studio import studio_paths
    from semisup.selection.select import select_run

    if fmt not in ("csv", "label-studio"):
        raise SemisupError(f"--format: expected csv or label-studio, got {fmt!r}")
    if fmt == "label-studio":  # refused before scoring, not after
        for path in studio_paths(out or run_dir / "select.csv"):
            refuse_existing(path, force, "Label Studio", "--out")
    chosen = build_strategy(strategy, option)
    with errors.status(f"scoring the unlabeled trailers ({strategy})..."):
        result = select_run(run_dir, budget, chosen, out, checkpoint, seed, force, task)
    extra = f" ({result.unreadable} unreadable)" if result.unreadable else ""
    with result.out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    guesses = [c for c in (rows[0] if rows else {}) if c.endswith("_guess")]
    table = Table(title=f"{len(result.ids)} of {result.pool} unlabeled trailers{extra}, by {strategy}"
                        + (" (the first 10)" if len(rows) > 10 else ""))
    for column in ("rank", "id", "score", *guesses):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for row in rows[:10]:
        table.add_row(*(escape(row[c]) for c in ("rank", "id", "score", *guesses)))
    console.print(table)
    console.print(f"written to [bold]{escape(str(result.out))}[/]")
    if fmt == "label-studio":
        from semisup.label.session import open_session
        from semisup.label.studio import write_import

        session = open_session(run_dir, result.out)
        samples = {s.id: s for s in session.samples if s is not None}
        written = write_import(result.out, samples, session.tasks, session.data_root, f"semisup {run_dir.name}",
                               frames, media_url, force)
        console.print(f"Label Studio: import [bold]{escape(str(written[0]))}[/] into a project labeled with "
                      f"{escape(str(written[1]))}; export its annotations as JSON, then "
                      f"`semisup data label DATASET_ROOT EXPORT.json`")
        return
    named = "" if out is None else f" {result.out}"
    console.print(f"label them in the browser with `semisup label {run_dir}{named}`, or fill in the empty task "
                  f"columns; then `semisup data label DATASET_ROOT {result.out}`")


@app.command("select-simulate")
def select_simulate(
    recipe: Path = typer.Argument(..., help="The recipe trained at every round (folder-format data or the demo)."),
    truth: Path = typer.Option(..., "--truth", help="A labels file with every trailer's labels "
                                                     "(the demo's labels_all.csv)."),
    strategy: List[str] = typer.Option(["random", "uncertainty", "diversity", "mix"], "--strategy",
                                       help="Strategies to compare (repeat)."),
    rounds: int = typer.Option(3, "--rounds", help="Selections per seed and strategy."),
    budget: int = typer.Option(20, "--budget", help="Trailers labeled per round."),
    seed: List[int] = typer.Option([0], "--seed", help="Seeds (repeat): one labeling loop each."),
    out: Path = typer.Option(..., "--out", help="The simulation folder (continued if interrupted)."),
    overrides: List[str] = typer.Option([], "--set", help="Recipe override section.key=value (repeat)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task whose test mAP is recorded (default: the first)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out that is not a simulation."),
) -> None:
    """Simulate labeling rounds on a dataset whose hidden labels are known: test mAP against labels per strategy."""
    from semisup.selection.simulate import simulate, summary_table
    from semisup.train.progress import RichProgress

    rows = simulate(recipe, truth, strategy, rounds, budget, seed, out, overrides, force, task,
                    log=lambda line: console.print(escape(line)), progress=RichProgress(errors))
    header, body = summary_table(rows)
    table = Table(title="test mAP by labeled trailers (mean ± std over seeds)")
    for column in header:
        table.add_column(column, justify="right")
    for row in body:
        table.add_row(*row)
    console.print(table)
    console.print(f"written: {out / 'simulation.csv'}, {out / 'simulation.md'}, {out / 'simulation.png'}")


@strategy_app.command("list")
def list_strategies() -> None:
    """Every selection strategy found: built-ins and installed plug-ins (entry points)."""
    from semisup.cli.plugins import print_catalogue
    from semisup.selection.strategies import strategy_catalogue

    print_catalogue("selection strategies (use a name, or a package.module:Class path, with --strategy)",
                    strategy_catalogue())
