"""``semisup run`` and ``semisup compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from semisup.cli.app import app, console, errors, fmt, multiclass_table
from semisup.errors import SemisupError


@app.command()
def run(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe TOML, e.g. recipes/sesemi.toml or RUN_DIR/config.toml."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<name>-<timestamp>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a killed run from its last checkpoint."),
    stage: str = typer.Option("all", help="all; pretrain (stop after the pretraining stage); finetune (needs --from)."),
    init_from: Optional[Path] = typer.Option(None, "--from", help="Encoder checkpoint to fine-tune (--stage finetune)."),
) -> None:
    """Train a model as a recipe says, then evaluate its best checkpoint on test.

    Exit code 3: the run finished and wrote its report, but found a problem after training
    (a val or test split more unreadable than ``data.max_unreadable``); report.json flags it.

    Under ``torchrun --nproc_per_node=N -m semisup run RECIPE`` the N processes
    train one model data-parallel; rank 0 shows progress, writes and reports.
    """
    from semisup import distributed
    from semisup.train.progress import NullProgress, RichProgress
    from semisup.train.run import resume_run, start_run

    main = distributed.launched_rank() == 0
    progress = RichProgress(errors) if main else NullProgress()
    if resume is not None and (recipe is not None or overrides or out is not None or init_from is not None
                               or stage != "all"):
        raise SemisupError("--resume RUN_DIR takes no recipe, --set, --out, --stage or --from "
                           "(the run keeps its config.toml and stages)")
    if resume is None and recipe is None:
        raise SemisupError("run: give a recipe (e.g. recipes/sesemi.toml) or --resume RUN_DIR")
    if resume is not None:
        result = resume_run(resume, progress=progress)
    else:
        result = start_run(recipe, overrides, out, progress=progress, stage=stage, init_from=init_from)
    # left only after a run that ended well: a process that failed exits at once (leaving the group
    # could wait on the others), and torchrun stops the rest
    distributed.leave()
    if not main:
        return
    if "splits" in result.report:
        print_report(result.report)
    else:
        knn = "  ".join(f"{task} " + " ".join(f"{k} {fmt(v)}" for k, v in m.items()) for task, m in
                        result.report.get("knn", {}).items())
        console.print(f"pretrained encoder: [bold]{result.report['encoder']}[/]  (kNN on val: {knn})")
    console.print(f"run directory: [bold]{result.run_dir}[/]")
    if result.problems:  # the results are written, and flagged: a script must not take them as clean
        more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        errors.print(f"[bold yellow]warning:[/] {escape(result.problems[0])}{more}; report.json is written and flags "
                     "it (that split's numbers cover only its readable trailers)", highlight=False, soft_wrap=True)
        raise typer.Exit(3)


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Finished run directories."),
    task: Optional[str] = typer.Option(None, help="Task to compare (default: the first)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table (for READMEs)."),
    classes: Optional[list[str]] = typer.Option(
        None, "--class", help="Multi-class tasks: show this class's test F1 (repeat; default: the two rarest)."),
) -> None:
    """Compare finished runs: test mAP and micro-F1 (multi-class: accuracy, macro-F1, the rarest classes'
    F1 and the worst class's), mean ± std over seeds, per recipe name."""
    from semisup.evaluate.compare import compare_runs, markdown_table, table_rows

    groups = compare_runs(runs, task)
    if markdown:
        print(markdown_table(groups, classes))
        return
    header, rows = table_rows(groups, classes)
    table = Table(title=f"test {groups[0].runs[0].task}: mean ± std over seeds")
    for column in header:
        table.add_column(column, justify="left" if column in ("recipe", "seeds") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_report(report: dict[str, Any]) -> None:
    """A table per task of the test split (report.json holds every number)."""
    for task, metrics in report["splits"]["test"].items():
        where = f"({metrics['samples']} samples, checkpoint {report['checkpoint']} epoch {fmt(report.get('epoch'))})"
        if "accuracy" in metrics:  # multi-class
            console.print(multiclass_table(f"test: {task}  accuracy {fmt(metrics['accuracy'])}  macro-F1 "
                                           f"{fmt(metrics['macro_f1'])}  {where}", metrics))
            continue
        table = Table(title=f"test: {task}  mAP {fmt(metrics['mAP'])}  {where}")
        table.add_column("rule")
        columns = [("micro", "precision"), ("micro", "recall"), ("micro", "f1"), ("macro", "f1"),
                   ("samples", "f1")]
        for avg, metric in columns:
            table.add_column(f"{avg} {'F1' if metric == 'f1' else metric[0].upper()}", justify="right")
        for rule, scores in metrics["rules"].items():
            table.add_row(rule, *(fmt(scores[avg][metric]) for avg, metric in columns))
        console.print(table)


@app.command()
def features(
    recipe: Path = typer.Argument(..., help="Recipe TOML: its encoder, weights, image size, eval_frames and dataset."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Cache folder (default: the recipe's data.features)."),
    force: bool = typer.Option(False, "--force", help="Replace a feature cache of other inputs at --out."),
) -> None:
    """Run the recipe's frozen encoder once over every trailer and cache its frame features
    (train from them with data.features = CACHE_DIR; a killed call continues where it stopped).

    Under ``torchrun --nproc_per_node=N -m semisup features RECIPE`` each of the N
    processes writes its own part of the cache (one GPU each); the cache reads as one.
    """
    from semisup.config import load_recipe
    from semisup import distributed
    from semisup.features import cache_folder, write_features
    from semisup.train.progress import NullProgress, RichProgress

    main = distributed.launched_rank() == 0
    loaded = load_recipe(recipe, overrides)
    folder = cache_folder(loaded, out)
    summary = write_features(loaded, folder, force, RichProgress(errors) if main else NullProgress())
    distributed.leave()  # only after the cache is complete (a failing process exits at once)
    if not main:
        return
    console.print(f"{summary['status']}: {summary['trailers']} trailers x {loaded.data.eval_frames} frames x "
                  f"{summary['width']} features in [bold]{folder}[/]"
                  + (f", {summary['parts']} parts" if summary["parts"] > 1 else "")
                  + f" ({summary['unreadable_trailers']} trailers "
                  f"without a readable frame, {summary['skipped_frames']} frames skipped)")
    if not loaded.data.features:
        console.print(f"train from it: semisup run {recipe} --set data.features=\"{folder}\" "
                      "--set model.trainable_stages=0")
