"""``semisup threshold-sweep``, ``evaluate``, ``predict``, ``embed``, ``pseudo-label`` and ``report``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text
from rich.table import Table

from semisup.cli.app import app, console, errors, fmt, multiclass_table
from semisup.errors import SemisupError

if TYPE_CHECKING:
    from semisup.predict import Inputs

OBJECTIVE_HELP = "What the sweep maximises on validation: micro-f1, macro-f1 or samples-f1."
FORCE_HELP = "Overwrite what an earlier call wrote there (without it, existing output is an error)."


@app.command("threshold-sweep")
def threshold_sweep(
    run_dir: Optional[Path] = typer.Argument(None, help="A run directory (uses predictions/val.npz and test.npz)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Or a validation predictions file (.npz)."),
    test: Optional[Path] = typer.Option(None, "--test", help="... and a test predictions file to report on."),
    objective: str = typer.Option("micro-f1", help=OBJECTIVE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN_DIR/sweep)."),
    apply: bool = typer.Option(False, "--apply", help="Store the chosen rules in the run, for predict."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Tune decision rules on validation, report them on test; write sweep.json, sweep.csv and plots."""
    from semisup.evaluate.predictions import Predictions
    from semisup.evaluate.runs import RunDir, store_rules
    from semisup.evaluate.plots import plot_sweeps
    from semisup.evaluate.sweep import OBJECTIVES, sweep, write_sweep
    from semisup.io import refuse_existing

    if objective not in OBJECTIVES:
        raise SemisupError(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")
    run = None
    if run_dir is not None:
        if val is not None or test is not None:
            raise SemisupError("give a RUN_DIR or --val/--test prediction files, not both")
        run = RunDir.open(run_dir)
        val_predictions, test_predictions = run.predictions("val"), run.predictions("test")
    elif val is not None:
        val_predictions = Predictions.load(val)
        test_predictions = Predictions.load(test) if test is not None else None
    else:
        raise SemisupError("threshold-sweep: give a RUN_DIR or --val VAL.npz [--test TEST.npz]")
    if apply and run is None:
        raise SemisupError("--apply needs a RUN_DIR to store the rules in")
    out = out or (run.sweep_dir if run else val.parent / "sweep")
    refuse_existing(out, force, "sweep", kind="folder")
    if apply:
        refuse_existing(run.decision, force, "decision", option="--apply")
    sweeps = sweep(val_predictions, test_predictions, objective)
    written = write_sweep(sweeps, out) + plot_sweeps(sweeps, out, val_predictions, test_predictions)
    for task, result in sweeps.items():
        maps = f"mAP val {fmt(result.map_val)} test {fmt(result.map_test)}"
        table = Table(title=f"{task}: decision rules tuned on validation by {objective}  ({maps})")
        table.add_column("rule")
        for split in ("val", "test"):
            for metric in ("P", "R", "F1"):
                table.add_column(f"{split} {metric}", justify="right")
        average = {"micro-f1": "micro", "macro-f1": "macro", "samples-f1": "samples"}[objective]
        for candidate in result.candidates:
            chosen = candidate is result.chosen
            cells = [*candidate.val[average], *(candidate.test[average] if candidate.test else (None,) * 3)]
            table.add_row(("* " if chosen else "  ") + candidate.rule.describe(), *(fmt(v) for v in cells),
                          style="bold green" if chosen else None)
        console.print(table)
    console.print(f"* chosen on validation; written to [bold]{out}[/] ({len(written)} files)")
    if apply:
        path = store_rules(run, {t: r.chosen.rule for t, r in sweeps.items()}, objective)
        console.print(f"stored in {path}: `semisup predict` and `semisup evaluate` now use these rules")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory or a model folder (`semisup export --format folder`)."),
    checkpoint: str = typer.Option("best", help="best, last or a checkpoint file."),
    split: str = typer.Option("test", help="train, val, test or unlabeled (needs labels to score)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the evaluation (default: RUN_DIR/"
                                       "evaluations/CHECKPOINT-SPLIT), e.g. for a model folder you cannot write to."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Score a checkpoint on a split again: predictions, report.json and the per-class table."""
    from semisup.evaluate.decisions import default_rules
    from semisup.evaluate.metrics import precision_recall_f1
    from semisup.evaluate.report import split_metrics
    from semisup.evaluate.runs import RunDir, check_scorable, per_class_table, score_checkpoint, stored_rules
    from semisup.io import refuse_existing
    from semisup.io import write_json
    from semisup.build import read_recipe_data

    run = RunDir.open(run_dir)
    recipe = run.recipe()
    ckpt = run.checkpoint(checkpoint)
    if out is None:
        out = run.path / "evaluations" / f"{Path(checkpoint).stem}-{split}"
        refuse_existing(out, force, "evaluation", option="--out, --checkpoint/--split", kind="folder")
    else:
        refuse_existing(out, force, "evaluation", kind="folder")
    dataset = read_recipe_data(recipe.data, recipe.tasks)
    if dataset.fatal():
        raise SemisupError(dataset.fatal()[0].message)
    check_scorable(dataset, split)
    predictions = score_checkpoint(recipe, dataset, ckpt, [split])[split]
    stored = stored_rules(run, predictions.kinds)
    rules = default_rules(recipe.eval.top_k, recipe.eval.threshold)
    metrics = split_metrics(predictions, rules)
    predictions.save(out / "predictions.npz")
    for task, values in metrics.items():
        keep = predictions.labeled[task]
        targets, scores = predictions.targets[task][keep], predictions.scores[task][keep]
        decided = precision_recall_f1(targets, stored[task](scores))
        values["stored_rule"] = {"rule": stored[task].describe(), **{
            avg: dict(zip(("precision", "recall", "f1"), decided.averages[avg])) for avg in ("micro", "macro", "samples")}}
        if predictions.kinds[task] == "multilabel":
            values["per_class_at_0.5"] = per_class_table(targets, scores, predictions.labels[task])
    write_json(out / "report.json", {"checkpoint": str(ckpt), "split": split, "tasks": metrics,
                                     "unreadable": predictions.unreadable_summary()})
    if predictions.unreadable or predictions.skipped_frames:
        errors.print(f"warning: {split}: {len(predictions.unreadable)} samples not scored (no readable frame), "
                     f"{len(predictions.skipped_frames)} unreadable frames skipped; report.json names them")
    for task, values in metrics.items():
        if "per_class_at_0.5" in values:
            table = Table(title=f"{split}: {task}  mAP {fmt(values['mAP'])}  ({values['samples']} samples; "
                                f"MovieNet style, p >= 0.5)")
            for column in ("label", "precision@0.5", "recall@0.5", "AP", "support"):
                table.add_column(column, justify="left" if column == "label" else "right")
            for row in values["per_class_at_0.5"]:
                table.add_row(row["label"], fmt(row["precision"]), fmt(row["recall"]), fmt(row["ap"]),
                              str(row["support"]))
            console.print(table)
        else:
            console.print(multiclass_table(f"{split}: {task}  accuracy {fmt(values.get('accuracy'))}  macro-F1 "
                                           f"{fmt(values.get('macro_f1'))}  ({values['samples']} samples)", values))
        rule = values["stored_rule"]
        console.print(f"  decision rule {rule['rule']}: micro P {fmt(rule['micro']['precision'])} "
                      f"R {fmt(rule['micro']['recall'])} F1 {fmt(rule['micro']['f1'])}")
    console.print(f"written to [bold]{out}[/]")


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run directory or a model folder (`semisup export --format folder`)."),
    inputs: Optional[list[Path]] = typer.Argument(None, help="Videos, frame folders, images, or folders of them."),
    from_list: Optional[Path] = typer.Option(None, "--from-list", help="A text file of inputs, one path per line."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write every prediction to a .csv or .parquet file "
                                                          "(resumable: the same command continues a killed job)."),
    checkpoint: str = typer.Option("best", help="best, last or a checkpoint file."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="Inputs per batch (default: the run's train.eval_batch_size)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help="Processes decoding frames (default: the run's data.num_workers)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV (input, task, labels, scores)."),
    top: int = typer.Option(3, help="Scores shown per task in the table."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file (and start a killed job over)."),
) -> None:
    """Labels and scores for new videos, frame folders or images, with the run's decision rule;
    with --out, for a whole catalogue into one file."""
    from semisup.predict import expand_inputs, predict_inputs, top_scores

    if as_json and as_csv:
        raise SemisupError("--json and --csv: choose one")
    if top < 0:
        raise SemisupError(f"--top: expected 0 (every label) or more scores per task, got {top}")
    if out is not None:
        if as_json or as_csv:
            raise SemisupError("--out writes a file; --json and --csv print: choose one")
        return _predict_catalogue(run_dir, expand_inputs(inputs or [], from_list), out, checkpoint, batch_size,
                                  workers, force)
    listed = expand_inputs(inputs or [], from_list, keep_repeats=True).paths
    with Progress(TextColumn("[bold]predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=errors, transient=True) as bars:
        task_id = bars.add_task("predict", total=len(listed))
        results = predict_inputs(run_dir, listed, checkpoint, on_batch=lambda n: bars.update(task_id, completed=n),
                                 batch_size=batch_size, workers=workers)
    failed = [r for r in results if r.error]
    if len(failed) == len(results):
        raise SemisupError(failed[0].error + (f" (and {len(failed) - 1} more inputs unreadable)"
                                              if len(failed) > 1 else ""))
    for r in failed:
        errors.print(f"warning: {escape(r.error)}", highlight=False, soft_wrap=True)
    results = [r for r in results if not r.error]
    damaged = [r for r in results if r.skipped_frames]
    if damaged:
        errors.print(f"warning: {sum(r.skipped_frames for r in damaged)} unreadable frames skipped in "
                     f"{len(damaged)} of {len(results)} inputs (e.g. {escape(damaged[0].input)}); their scores come "
                     "from the frames that read", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps([{"input": r.input, "skipped_frames": r.skipped_frames,
                           "tasks": {t: {"labels": r.labels[t], "scores": r.scores[t]} for t in r.labels}}
                          for r in results], indent=2))
        return
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["input", "task", "labels", "scores", "skipped_frames"])
        for r in results:
            for t in r.labels:
                writer.writerow([r.input, t, "|".join(r.labels[t]), json.dumps(r.scores[t]), r.skipped_frames])
        return
    table = Table(title="predictions")
    for column in ("input", "task", "labels", "top scores", *(("skipped frames",) if damaged else ())):
        table.add_column(column, overflow="fold")
    for r in results:
        for i, t in enumerate(r.labels):
            table.add_row(r.input if i == 0 else "", t, ", ".join(r.labels[t]) or "-",
                          "  ".join(f"{label} {p:.2f}" for label, p in top_scores(r.scores[t], top)),
                          *((str(r.skipped_frames) if i == 0 else "",) if damaged else ()))
    console.print(table)


def _predict_catalogue(run_dir: Path, inputs: Inputs, out: Path, checkpoint: str, batch_size: Optional[int],
                       workers: Optional[int], force: bool) -> None:
    """``predict --out``: every input into one file, with a progress bar (inputs/s, frames/s, ETA)."""
    from semisup.catalogue import check_target, predict_catalogue
    from semisup.predict import Predictor

    check_target(out, inputs, force)
    with errors.status("loading the model..."):
        predictor = Predictor(run_dir, checkpoint, batch_size, workers)
    bars = Progress(TextColumn("[bold]predicting"), BarColumn(), MofNCompleteColumn(), RateColumn("inputs"),
                    RateColumn("frames", "frames"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=errors, transient=True)  # the summary line below keeps its figures
    task_id = bars.add_task("predict", total=None, frames=0)

    def start(total: int, done: int) -> None:
        bars.reset(task_id, total=total, completed=done, base=done, frames=0)  # rates count from here
        if done:
            errors.print(f"continuing {out}: {done} of {total} inputs written before", highlight=False, soft_wrap=True)

    def advance(count: int, frames: int) -> None:
        bars.update(task_id, advance=count, frames=bars.tasks[task_id].fields["frames"] + frames)

    with bars:
        result = predict_catalogue(predictor, inputs, out, force, on_start=start, on_batch=advance)
    if result.total and len(result.unreadable) == result.total:  # a wrong folder or decoder, most likely
        raise SemisupError(f"{result.out}: none of the {result.total} inputs could be read (e.g. "
                           f"{result.unreadable[0][1]}); each is listed there with its reason")
    for name, why in result.unreadable[:5]:
        errors.print(f"unreadable: {escape(why)}", highlight=False, soft_wrap=True)
    more = len(result.unreadable) - 5
    task = bars.tasks[task_id]
    speed = (f" in {task.elapsed:.0f} s ({result.predicted / task.elapsed:.1f} inputs/s, "
             f"{task.fields['frames'] / task.elapsed:.0f} frames/s)" if result.predicted and task.elapsed else "")
    console.print(f"{result.total - len(result.unreadable)} of {result.total} inputs predicted into [bold]{result.out}"
                  f"[/]{speed}" + (f"; {len(result.unreadable)} unreadable (status unreadable in the file"
                            + (f"; {more} more not shown above" if more > 0 else "") + ")" if result.unreadable else "")
                  + (f"; {result.ignored} files in the folders are neither videos nor images" if result.ignored
                     else ""), highlight=False, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second since the bar started: ``12.3 inputs/s`` (``frames``: of the task's
    ``frames`` field, which the job adds to)."""

    def __init__(self, unit: str, field: str | None = None) -> None:
        super().__init__()
        self.unit, self.field = unit, field

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        amount = task.fields.get(self.field, 0) if self.field else task.completed - task.fields.get("base", 0)
        rate = amount / elapsed if elapsed > 0.5 else None
        return Text(f"{rate:.1f} {self.unit}/s" if rate is not None else f"- {self.unit}/s", style="progress.data.speed")


@app.command()
def embed(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    inputs: list[Path] = typer.Argument(None, help="Video files, folders of frames or images."),
    splits: list[str] = typer.Option([], "--split", help="Also embed a split of the run's dataset (repeatable)."),
    checkpoint: str = typer.Option("best", help="best, last, pretrained (the encoder from the pretraining stage) or a checkpoint file."),
    out: Optional[Path] = typer.Option(None, "--out", help=".npz (ids + embeddings) or .npy; default RUN_DIR/embeddings.npz"),
    task: Optional[str] = typer.Option(None, "--task", help="Embed as this task's trained aggregator sees a trailer "
                                                             "(default: mean of the frame features)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Frozen trailer embeddings (frame features averaged per trailer, or a task's aggregator) to a file."""
    from semisup.embed import embed_run

    with errors.status("embedding..."):
        path, count, width = embed_run(run_dir, inputs or [], splits, checkpoint, out, force, task)
    console.print(f"{count} trailers x {width} features written to [bold]{path}[/]")


@app.command("pseudo-label")
def pseudo_label(
    run_dir: Path = typer.Argument(..., help="A finished run directory (the teacher)."),
    out: Path = typer.Option(..., "--out", help="Folder for the new folder-format dataset."),
    checkpoint: str = typer.Option("best", help="best, last or a checkpoint file."),
    min_confidence: float = typer.Option(0.0, "--min-confidence",
                                         help="Leave trailers less sure than this unlabeled (0-1; see the docs)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier pseudo-label folder at --out."),
) -> None:
    """Label the unlabeled trailers with a trained run: a folder-format dataset for a student (self-training)."""
    from semisup.pseudo_label import pseudo_label as label_unlabeled

    with errors.status("pseudo-labeling..."):
        result = label_unlabeled(run_dir, out, checkpoint, min_confidence, force)
    table = Table(title=f"pseudo-labels: {result.labeled} of {result.scored} unlabeled trailers"
                        + (f" ({result.unreadable} unreadable)" if result.unreadable else ""))
    table.add_column("task")
    table.add_column("trailers per class")
    for task, counts in result.counts.items():
        table.add_row(task, ", ".join(f"{label} {n}" for label, n in counts.items()))
    console.print(table)
    console.print(f"dataset written to [bold]{result.out}[/]; train a student with "
                  f"`semisup run RECIPE --set data.format=folder --set data.root={result.out}`")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A finished run directory."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)."),
    objective: str = typer.Option("micro-f1", help=OBJECTIVE_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write one self-contained HTML page: recipe, training curves, results, sweep, per-class tables."""
    from semisup.evaluate.html import write_html_report
    from semisup.evaluate.sweep import OBJECTIVES

    if objective not in OBJECTIVES:
        raise SemisupError(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")
    path = write_html_report(run_dir, out, objective, force)
    console.print(f"report written to [bold]{path}[/]")
