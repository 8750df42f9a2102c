"""Models out of semisup: a model folder others can load, ONNX and TorchScript files.

``semisup export RUN_DIR --format folder|onnx|torchscript --out PATH`` calls
:func:`export_run`. Every format carries the same description of the model
(:mod:`semisup.export.card`); the graph formats hold the whole trailer model of
:mod:`semisup.export.classifier` (frames in, per-task probabilities out) and are checked
against PyTorch before they are put in place (:mod:`semisup.export.graphs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semisup.errors import SemisupError

FORMATS = ("folder", "onnx", "torchscript")


@dataclass
class ExportResult:
    """What ``semisup export`` wrote."""

    path: Path
    format: str
    max_difference: float | None = None
    """Graph formats: largest difference of a probability to PyTorch (None for the folder)."""
    timm_encoder: bool = False
    """Folder: whether ``encoder.safetensors`` (the encoder for timm) was written."""


def export_run(run_dir: Path, fmt: str, out: Path, checkpoint: str = "best", force: bool = False) -> ExportResult:
    """Export a run's (or a model folder's) trained model.

    Args:
        run_dir: a run directory or a model folder.
        fmt: ``folder``, ``onnx`` or ``torchscript``.
        out: the folder or file to write.
        checkpoint: ``best``, ``last`` or a checkpoint file of the run.
        force: replace an earlier export at ``out``.

    Raises:
        SemisupError: an unknown format, a run that cannot be exported (trained on cached features),
            an existing ``out`` without ``force``, or an export that fails its check.
    """
    from semisup.evaluate.runs import RunDir, load_model, recipe_tasks, stored_rules
    from semisup.export.card import model_config
    from semisup.io import link_target, refuse_existing

    if fmt not in FORMATS:
        raise SemisupError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if fmt != "folder":
        refuse_existing(out, force, f"{fmt} model", "--out")
    run = RunDir.open(run_dir)
    recipe = run.recipe()
    if recipe.data.features:
        raise SemisupError(f"{run.path}: this run trained from cached features (data.features = "
                           f"{recipe.data.features!r}): its heads read the cache, not frames, so it has no whole model "
                           "to export; train with the encoder in the run (no data.features) to export it")
    tasks = recipe_tasks(recipe)
    rules = stored_rules(run, {t.name: t.kind for t in tasks})
    ckpt = run.checkpoint(checkpoint)
    loaded = load_model(recipe, tasks, ckpt)
    model = loaded.model.cpu().float().eval()
    config = model_config(run, recipe, tasks, rules, model, checkpoint if not run.model_folder else "model.safetensors")
    if fmt == "folder":
        from semisup.export.folder import write_model_folder

        path = write_model_folder(out, model, config, run, rules, force)
        return ExportResult(path, fmt, timm_encoder=(path / "encoder.safetensors").is_file())
    from semisup.export.classifier import TrailerClassifier
    from semisup.export.graphs import export_onnx, export_torchscript

    out = link_target(out)  # --force onto a link: the file it points to is replaced, the link stays
    out.parent.mkdir(parents=True, exist_ok=True)
    write = export_onnx if fmt == "onnx" else export_torchscript
    exported = write(TrailerClassifier(model, tasks), config, out)
    return ExportResult(exported.path, fmt, exported.max_difference)
