"""A whole run: run directory, training, and the final evaluation of ``best.pt``.

The run directory holds everything a run makes::

    runs/<name>-<timestamp>/
      config.toml             the resolved recipe (label vocabularies filled in);
                              `semisup run RUN_DIR/config.toml` repeats the run
      metrics.jsonl           one JSON object per epoch
      tensorboard/            TensorBoard event files
      checkpoints/last.pt     model, optimisers, random state, position (resume)
      checkpoints/best.pt     model weights of the best validation epoch
      predictions/val.npz     ids, per-task probabilities and targets
      predictions/test.npz
      report.json             final metrics per task on val and test
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from semisup.config import Recipe, load_recipe, recipe_to_toml
from semisup.data.inspect import problem_summary
from semisup.data.samples import Dataset, TaskSpec
from semisup.errors import SemisupError
from semisup.evaluate.decisions import default_rules
from semisup.evaluate.report import split_metrics
from semisup.train.checkpoints import load_checkpoint
from semisup.train.logs import write_json_atomically
from semisup.train.loop import fit
from semisup.train.progress import NullProgress
from semisup.train.setup import load_data


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    report: dict[str, Any]


def new_run_dir(recipe: Recipe, out: Path | None = None) -> Path:
    """Create ``out`` or ``<run.out_dir>/<run.name>-<timestamp>``.

    Raises:
        SemisupError: ``out`` exists and is not empty (resume it with ``--resume``).
    """
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = recipe.run.out_dir.expanduser() / f"{recipe.run.name}-{stamp}"
        suffix = 1
        while out.exists():
            suffix += 1
            out = out.with_name(f"{recipe.run.name}-{stamp}-{suffix}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SemisupError(f"{out}: run directory already exists and is not empty "
                           "(continue it with `semisup run --resume`, or choose another --out)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def resolved_recipe(recipe: Recipe, specs: list[TaskSpec]) -> Recipe:
    """The recipe with every task's label vocabulary written in."""
    vocab = {s.name: s.labels for s in specs}
    tasks = tuple(dataclasses.replace(t, labels=vocab[t.name]) for t in recipe.tasks)
    return dataclasses.replace(recipe, tasks=tasks)


def start_run(recipe_path: Path, overrides: list[str] = (), out: Path | None = None,
              progress: NullProgress | None = None) -> RunResult:
    """Validate a recipe, read its data, create a run directory and run it to the end.

    Raises:
        SemisupError: any problem with the recipe, the data or the output folder,
            found before training starts.
    """
    recipe = load_recipe(recipe_path, overrides)
    dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=bool(recipe.pretext))
    recipe = resolved_recipe(recipe, dataset.tasks)
    run_dir = new_run_dir(recipe, out)
    _write_text_atomically(run_dir / "config.toml", recipe_to_toml(recipe))
    return _run(recipe, dataset, run_dir, resume=False, progress=progress)


def resume_run(run_dir: Path, progress: NullProgress | None = None) -> RunResult:
    """Continue a killed run from ``checkpoints/last.pt`` (from scratch if it has none).

    Raises:
        SemisupError: not a run directory.
    """
    config = run_dir / "config.toml"
    if not config.is_file():
        raise SemisupError(f"{run_dir}: not a run directory (no config.toml)")
    recipe = load_recipe(config)
    dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=bool(recipe.pretext))
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    return _run(recipe, dataset, run_dir, resume=resume, progress=progress)


def _run(recipe: Recipe, dataset: Dataset, run_dir: Path, resume: bool, progress: NullProgress | None) -> RunResult:
    progress = progress or NullProgress()
    for line in problem_summary(dataset.problems):
        progress.message(f"warning: {line}")
    result = fit(recipe, dataset.samples, dataset.tasks, run_dir, resume=resume, progress=progress)
    report = final_evaluation(recipe, dataset, run_dir)
    report["training"] = {"best_epoch": result.best_epoch, "best_val_score": result.best_score,
                          "epochs": result.epochs, "train_seconds": round(result.seconds, 1)}
    write_json_atomically(run_dir / "report.json", report)
    return RunResult(run_dir, report)


def final_evaluation(recipe: Recipe, dataset: Dataset, run_dir: Path, checkpoint: str = "best.pt") -> dict[str, Any]:
    """Score ``checkpoint`` on val and test: write predictions and return the report."""
    from semisup.evaluate.runs import score_checkpoint

    state = load_checkpoint(run_dir / "checkpoints" / checkpoint)
    rules = default_rules(recipe.eval.top_k, recipe.eval.threshold)
    report: dict[str, Any] = {"run": recipe.run.name, "checkpoint": checkpoint, "epoch": state.get("epoch"),
                              "splits": {}}
    for split, predictions in score_checkpoint(recipe, dataset, run_dir / "checkpoints" / checkpoint,
                                               ("val", "test")).items():
        predictions.save(run_dir / "predictions" / f"{split}.npz")
        report["splits"][split] = split_metrics(predictions, rules)
    return report


def _write_text_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
