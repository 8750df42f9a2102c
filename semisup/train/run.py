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
      stage.json              which stages the run does (resume continues them)
      pretrain/               recipes with [pretrain]: the SimCLR stage's metrics.jsonl,
                              tensorboard/, checkpoints/last.pt, and encoder.pt, which
                              fine-tuning starts from
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from semisup import distributed
from semisup.build import feature_cache_key, load_data, open_feature_cache
from semisup.data.cached import FeatureCache
from semisup.checkpoints import load_checkpoint, load_encoder_state, save_encoder
from semisup.config import Recipe, load_recipe, recipe_changes, recipe_to_dict, recipe_to_toml, stored_recipe_dict
from semisup.data.health import check_split
from semisup.data.inspect import check_readable_splits, problem_summary
from semisup.data.samples import Dataset, TaskSpec, split_samples
from semisup.device import resolve_device
from semisup.errors import SemisupError
from semisup.evaluate.decisions import default_rules
from semisup.evaluate.report import split_metrics
from semisup.io import remove_stale_partials, write_json, write_text
from semisup.io import read_metrics
from semisup.models import create_encoder
from semisup.train.loop import fit
from semisup.train.progress import NullProgress
from semisup.train.setup import unlabeled_needed
from semisup.train.simclr import encoder_path, pretrain


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    report: dict[str, Any]
    problems: list[str] = dataclasses.field(default_factory=list)
    """Found after training, written into ``report.json`` (e.g. a test split that became unreadable):
    the results stand but are flagged; ``semisup run`` warns and exits with code 3."""


# What a run directory holds before its first checkpoint: a run that failed in
# setup (weights, device, data) leaves only these, and may be started afresh.
SETUP_ENTRIES = frozenset({"config.toml", "stage.json", "metrics.jsonl", "tensorboard", "checkpoints", "pretrain"})


def never_trained(run_dir: Path) -> bool:
    """True for a run directory with nothing worth keeping: no checkpoint, no
    result, no pretrained encoder of its own (a copy made by ``--from`` does not count).

    Such a directory is what a run leaves when it fails during setup; starting
    a run there again replaces it.
    """
    if not run_dir.is_dir() or not (run_dir / "config.toml").is_file():
        return False
    if not {p.name for p in run_dir.iterdir()} <= SETUP_ENTRIES:
        return False
    if any(any((run_dir / folder).glob("*.pt")) for folder in ("checkpoints", "pretrain/checkpoints")):
        return False
    copied_encoder = _stage_info(run_dir).get("from") is not None
    return copied_encoder or not encoder_path(run_dir).exists()


def clear_setup_files(run_dir: Path) -> None:
    """Delete what a run wrote before it trained (see :func:`never_trained`); keep the folder."""
    for name in SETUP_ENTRIES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def new_run_dir(recipe: Recipe, out: Path | None = None) -> Path:
    """Create ``out`` or ``<run.out_dir>/<run.name>-<timestamp>``.

    An ``out`` that holds only a run that never trained (it failed during
    setup) is cleared and used again.

    Raises:
        SemisupError: ``out`` is a file, or a folder with anything else in it
            (resume a run with ``--resume``).
    """
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = recipe.run.out_dir.expanduser() / f"{recipe.run.name}-{stamp}"
        suffix = 1
        while out.exists():
            suffix += 1
            out = out.with_name(f"{recipe.run.name}-{stamp}-{suffix}")
    if out.exists() and not out.is_dir():
        raise SemisupError(f"{out}: is a file, expected a run directory (--out)")
    if never_trained(out):
        clear_setup_files(out)
    elif out.exists() and any(out.iterdir()):
        what = ("a run directory (continue it with `semisup run --resume`)" if (out / "config.toml").is_file()
                else "not empty")
        raise SemisupError(f"{out}: already exists and is {what}; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def resolved_recipe(recipe: Recipe, specs: list[TaskSpec]) -> Recipe:
    """The recipe with every task's label vocabulary written in."""
    vocab = {s.name: s.labels for s in specs}
    tasks = tuple(dataclasses.replace(t, labels=vocab[t.name]) for t in recipe.tasks)
    return dataclasses.replace(recipe, tasks=tasks)


STAGES = ("all", "pretrain", "finetune")


def start_run(recipe_path: Path, overrides: Sequence[str] = (), out: Path | None = None,
              progress: NullProgress | None = None, stage: str = "all", init_from: Path | None = None) -> RunResult:
    """Validate a recipe, read its data, create a run directory and run it to the end.

    Args:
        recipe_path: the recipe TOML.
        overrides: ``section.key=value`` strings.
        out: the run directory (default ``<run.out_dir>/<run.name>-<timestamp>``).
        progress: progress display.
        stage: ``all``; ``pretrain`` (stop after the ``[pretrain]`` stage); or
            ``finetune`` (skip pretraining, start the encoder from ``init_from``).
        init_from: an encoder checkpoint (``pretrain/encoder.pt`` of any run, or
            a run's ``checkpoints/*.pt``) to fine-tune, with ``stage="finetune"``.

    Raises:
        SemisupError: any problem with the recipe, the stages, the encoder
            checkpoint, the data or the output folder, found before training starts.
    """
    recipe = load_recipe(recipe_path, overrides)
    if stage not in STAGES:
        raise SemisupError(f"--stage: expected one of {', '.join(STAGES)}, got {stage!r}")
    if stage == "pretrain" and recipe.pretrain is None:
        raise SemisupError(f"{recipe_path}: --stage pretrain, but the recipe has no [pretrain] section")
    if (init_from is None) != (stage != "finetune"):
        raise SemisupError("--stage finetune and --from ENCODER go together (fine-tune a saved encoder)")
    # fails fast, before a run directory exists (a missing GPU, sync_batchnorm on CPUs)
    distributed.join(resolve_device(recipe.run.device), recipe.run.sync_batchnorm)
    encoder_state = None
    if init_from is not None:
        encoder_state = load_encoder_state(init_from, recipe.model.encoder)
        m = recipe.model  # fails fast on a misfit, before a run directory exists
        create_encoder(m.encoder, False, "all", frame_differences=m.frame_differences).load_backbone_state(
            encoder_state, str(init_from))
    with distributed.main_first():  # under torchrun rank 0 builds a demo folder before the others read it
        dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=unlabeled_needed(recipe, stage != "finetune"))
    recipe = resolved_recipe(recipe, dataset.tasks)
    cache = open_run_cache(recipe, dataset)  # a missing or stale cache fails before a run directory exists
    check_readable(recipe, dataset, progress, stage)

    def create() -> Path:
        run_dir = new_run_dir(recipe, out)
        write_text(run_dir / "config.toml", recipe_to_toml(recipe))
        write_json(run_dir / "stage.json", {"stage": stage, "from": str(init_from) if init_from else None,
                                            "recipe": recipe_to_dict(recipe)})  # what a resume is checked against
        if encoder_state is not None:  # the run keeps its own copy: it stays complete if the source moves
            save_encoder(encoder_path(run_dir), recipe.model.encoder, encoder_state)
        return run_dir

    run_dir = distributed.on_main(create)
    try:
        return _run(recipe, dataset, run_dir, progress=progress, cache=cache)
    except Exception:
        if distributed.current().main and never_trained(run_dir):  # failed in setup: nothing may block the retry
            clear_setup_files(run_dir)
            if not any(run_dir.iterdir()):
                run_dir.rmdir()
        raise


def resume_run(run_dir: Path, progress: NullProgress | None = None) -> RunResult:
    """Continue a killed run in the stage it was in, from that stage's last checkpoint.

    Raises:
        SemisupError: not a run directory; its ``config.toml`` was edited since the run started (a key
            outside :data:`~semisup.config.SAFE_TO_CHANGE_ON_RESUME`); the stage to continue has
            trained epochs but no ``last.pt`` to continue them from.
    """
    config = run_dir / "config.toml"
    if not config.is_file():
        raise SemisupError(f"{run_dir}: not a run directory (no config.toml)")
    recipe = load_recipe(config)
    check_recipe_unchanged(run_dir, recipe)
    check_resumable(run_dir, recipe)
    distributed.join(resolve_device(recipe.run.device), recipe.run.sync_batchnorm)
    stage = _stage(run_dir)
    needs_unlabeled = unlabeled_needed(recipe, pretraining=not encoder_path(run_dir).exists())
    with distributed.main_first():
        dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=needs_unlabeled)
    cache = open_run_cache(recipe, dataset)
    if not _trained_to_the_end(run_dir, recipe):  # a finished run is only scored again, and flags what is not
        check_readable(recipe, dataset, progress, stage)
    return _run(recipe, dataset, run_dir, progress=progress, stage=stage, cache=cache)


def open_run_cache(recipe: Recipe, dataset: Dataset) -> FeatureCache | None:
    """The recipe's feature cache, opened once for the whole run (training and its final
    evaluation); under torchrun rank 0 computes the key (a stat of every frame file) for all."""
    if not recipe.data.features:
        return None
    key = distributed.on_main(lambda: feature_cache_key(recipe, dataset.samples), distributed.patient_group())
    return open_feature_cache(recipe, dataset.samples, key)


def check_readable(recipe: Recipe, dataset: Dataset, progress: NullProgress | None = None,
                   stage: str = "all") -> None:
    """Before training, find out whether the val and test trailers read (one decode per trailer, a
    fraction of what one validation pass decodes).

    Val picks ``best.pt``: more than ``data.max_unreadable`` of it unreadable would stop the run
    after its first epoch, so it stops it now. Test does not touch training: when too much of it is
    unreadable the run says so now (in time to fix the files) and trains, and its ``report.json``
    flags the split (``semisup run`` exits with 3). The training streams, often far larger, are
    checked as they are read (:mod:`semisup.data.health`). A run from cached features reads no
    frames and is not checked.

    Raises:
        SemisupError: more than ``data.max_unreadable`` of val, or all of it, unreadable.
    """
    if recipe.data.features:
        return
    check_readable_splits(dataset.samples, ("val",), recipe.data.max_unreadable)
    if stage == "pretrain":  # a pretraining-only run scores no test split
        return
    try:
        check_readable_splits(dataset.samples, ("test",), recipe.data.max_unreadable)
    except SemisupError as exc:
        (progress or NullProgress()).message(f"warning: {exc}; the run trains, and its report.json will flag "
                                             "the test split")


def check_recipe_unchanged(run_dir: Path, recipe: Recipe) -> None:
    """Refuse to resume a run whose ``config.toml`` now says something else than the recipe it was
    trained with (kept in ``stage.json``), except keys that are safe to change.

    Both are read through today's schema (options added by a newer semisup take their defaults on
    both sides). Runs started before ``stage.json`` kept the recipe are not checked.

    Raises:
        SemisupError: the first changed key, with its old and new values (the keys safe to change are
            :data:`semisup.config.SAFE_TO_CHANGE_ON_RESUME`).
    """
    stored = _stage_info(run_dir).get("recipe")
    trained = stored_recipe_dict(stored) if isinstance(stored, dict) else None
    if trained is None:
        return
    changed = recipe_changes(trained, recipe_to_dict(recipe))
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise SemisupError(f"{run_dir / 'config.toml'}: differs from the recipe the run was trained with (kept in "
                           f"stage.json): {changed[0]}{more}; a "
                           "resumed run keeps its recipe, except the keys the docs list as safe to change "
                           "(data.root, train.epochs, run.device, ...): undo the edit, or start a new run with "
                           f"`semisup run {run_dir / 'config.toml'} --out NEW_DIR`")


def check_resumable(run_dir: Path, recipe: Recipe) -> None:
    """Refuse to resume a stage that has trained (or a run that has finished) but has no
    ``last.pt`` to continue from: it would train again from epoch 1 over the results it made.

    A stage killed before its first checkpoint (at most one epoch's record written, no report)
    starts again from the beginning.

    Raises:
        SemisupError: naming the missing checkpoint and what shows the run had trained.
    """
    pretraining = recipe.pretrain is not None and not encoder_path(run_dir).exists()
    stage_dir = run_dir / "pretrain" if pretraining else run_dir
    last = stage_dir / "checkpoints" / "last.pt"
    if last.is_file():
        return
    metrics = stage_dir / "metrics.jsonl"
    epochs = max((r.get("epoch", 0) for r in read_metrics(metrics)), default=0) if metrics.is_file() else 0
    if (run_dir / "report.json").is_file():
        shown = "has finished (report.json)"
    elif epochs >= 2:
        shown = f"has trained {epochs} epochs ({metrics.relative_to(run_dir)})"
    else:
        return
    raise SemisupError(f"{last}: missing, but the run {shown}: there is nothing to resume from, and training "
                       "again from epoch 1 would overwrite its results; start a new run with "
                       f"`semisup run {run_dir / 'config.toml'} --out NEW_DIR`")


def _trained_to_the_end(run_dir: Path, recipe: Recipe) -> bool:
    """Whether the run's (last) stage has recorded its last epoch and kept its ``last.pt``."""
    metrics = run_dir / "metrics.jsonl"
    if not (run_dir / "checkpoints" / "last.pt").is_file() or not metrics.is_file():
        return False
    return max((r.get("epoch", 0) for r in read_metrics(metrics)), default=0) >= recipe.train.epochs


def _stage_info(run_dir: Path) -> dict[str, Any]:
    """``stage.json``: the stages the run does and the encoder it started ``from``."""
    path = run_dir / "stage.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def _stage(run_dir: Path) -> str:
    return _stage_info(run_dir).get("stage", "all")


def _run(recipe: Recipe, dataset: Dataset, run_dir: Path, progress: NullProgress | None,
         stage: str | None = None, cache: FeatureCache | None = None) -> RunResult:
    progress = progress or NullProgress()
    stage = stage or _stage(run_dir)
    main = distributed.current().main
    if main:
        for folder in (run_dir, run_dir / "checkpoints", run_dir / "pretrain", run_dir / "pretrain" / "checkpoints"):
            remove_stale_partials(folder)  # temporary files of a writer that was killed
    distributed.barrier()
    for line in problem_summary(dataset.problems):
        progress.message(f"warning: {line}")
    pretrained = encoder_path(run_dir)
    if recipe.pretrain is not None and not pretrained.exists():
        progress.message("stage 1: contrastive pretraining (SimCLR)")
        resume = (run_dir / "pretrain" / "checkpoints" / "last.pt").is_file()
        pretrain(recipe, dataset.samples, dataset.tasks, run_dir, resume=resume, progress=progress)
    if stage == "pretrain":
        last = read_metrics(run_dir / "pretrain" / "metrics.jsonl")[-1]
        return RunResult(run_dir, {"stage": "pretrain", "encoder": str(pretrained), "knn": last.get("knn", {})})
    if pretrained.exists():
        progress.message("stage 2: fine-tuning from the pretrained encoder")
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    result = fit(recipe, dataset.samples, dataset.tasks, run_dir, resume=resume, progress=progress,
                 init_encoder=pretrained if pretrained.exists() else None, cache=cache)
    if not main:  # rank 0 evaluates and reports
        return RunResult(run_dir, {})
    try:  # the training is done and kept whatever happens now: a failure says so, and how to finish
        report = final_evaluation(recipe, dataset, run_dir, cache=cache)
        report["training"] = {"best_epoch": result.best_epoch, "best_val_score": result.best_score,
                              "epochs": result.epochs, "train_seconds": round(result.seconds, 1)}
        if recipe.pretrain is not None and (run_dir / "pretrain" / "metrics.jsonl").exists():
            pretrain_records = read_metrics(run_dir / "pretrain" / "metrics.jsonl")
            report["pretrain"] = {"epochs": len(pretrain_records),
                                  "seconds": pretrain_records[-1].get("elapsed_s") if pretrain_records else None,
                                  "knn": pretrain_records[-1].get("knn") if pretrain_records else None}
        problems = [f"{split}: {missing['over_limit']}" for split, missing in report["unreadable"].items()
                    if missing.get("over_limit")]
        if problems:
            report["problems"] = problems
        write_json(run_dir / "report.json", report)
    except (SemisupError, OSError) as exc:
        raise SemisupError(f"{run_dir}: training finished and is kept in checkpoints/, but the final evaluation "
                           f"failed: {exc}; once that is fixed, `semisup run --resume {run_dir}` evaluates it") from exc
    for split, missing in report["unreadable"].items():
        if (missing["samples"] or missing["skipped_frames"]) and not missing.get("over_limit"):  # else the CLI warns
            progress.message(f"warning: {split}: {missing['samples']} samples not scored (no readable frame), "
                             f"{missing['skipped_frames']} unreadable frames skipped; report.json names them")
    return RunResult(run_dir, report, problems)


def final_evaluation(recipe: Recipe, dataset: Dataset, run_dir: Path, checkpoint: str = "best.pt",
                     cache: FeatureCache | None = None) -> dict[str, Any]:
    """Score ``checkpoint`` on val and test: write predictions and return the report.

    The report names the samples that could not be scored (no readable frame)
    and counts the skipped frames, per split, under ``unreadable``. A split with more
    than ``data.max_unreadable`` of its samples unreadable is still scored on what reads, and
    flagged: its ``unreadable`` entry holds the rule's message under ``over_limit``.

    Raises:
        SemisupError: an unreadable checkpoint.
    """
    from semisup.evaluate.runs import score_checkpoint

    state = load_checkpoint(run_dir / "checkpoints" / checkpoint)
    rules = default_rules(recipe.eval.top_k, recipe.eval.threshold)
    report: dict[str, Any] = {"run": recipe.run.name, "checkpoint": checkpoint, "epoch": state.get("epoch"),
                              "splits": {}, "unreadable": {}}
    for split, predictions in score_checkpoint(recipe, dataset, run_dir / "checkpoints" / checkpoint,
                                               ("val", "test"), enforce_limit=False, cache=cache).items():
        predictions.save(run_dir / "predictions" / f"{split}.npz")
        report["splits"][split] = split_metrics(predictions, rules) if len(predictions.ids) else {}
        report["unreadable"][split] = predictions.unreadable_summary()
        try:
            check_split(split, split_samples(dataset.samples, split), predictions.unreadable,
                        recipe.data.max_unreadable)
        except SemisupError as exc:
            report["unreadable"][split]["over_limit"] = str(exc)
    return report

