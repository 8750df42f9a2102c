"""Fine-tuning: the recipe's model, objectives and streams, trained by the one loop.

:func:`fit` builds a :class:`~semisup.train.engine.Stage` from the recipe
(the model, the supervised task losses, each pretext task and consistency
method, their optimisers, the labeled and unlabeled streams, the EMA teacher
when one is needed) and hands it to :func:`~semisup.train.engine.train_stage`.
After each epoch the model (or its teacher, ``[ema] evaluate``) is scored on
validation: mean over tasks of mAP (multi-label) or accuracy (multi-class),
which picks ``best.pt``; consistency methods that pseudo-label also report how
their current thresholds would label validation clips as long as their
unlabeled ones (and calibrate on them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from semisup.build import build_eval_loader, build_model, input_transform, open_feature_cache
from semisup.checkpoints import load_encoder_state
from semisup.config import Recipe
from semisup.data.cached import FeatureCache
from semisup.data.health import check_split
from semisup.data.samples import Sample, TaskSpec, split_samples
from semisup.evaluate.inference import predict
from semisup.evaluate.metrics import mean_average_precision
from semisup.evaluate.predictions import Predictions
from semisup.objectives import Objective
from semisup import distributed
from semisup.train.engine import FitResult, Stage, train_stage
from semisup.train.progress import NullProgress
from semisup.train.setup import (build_augmentations, build_objectives, build_optimizers, build_streams,
                                 build_teacher, compile_encoder, loop_settings, sync_batchnorm)


def validation_scores(predictions: Predictions, specs: Sequence[TaskSpec]) -> dict[str, dict[str, float]]:
    """Per task on its labeled samples: mAP, and accuracy for multi-class tasks.

    A task's primary score (what picks ``best.pt``) is its mAP if multi-label,
    its accuracy if multi-class.
    """
    out = {}
    for spec in specs:
        keep = predictions.labeled[spec.name]
        targets, scores = predictions.targets[spec.name][keep], predictions.scores[spec.name][keep]
        out[spec.name] = {"mAP": mean_average_precision(targets, scores)}
        if spec.kind == "multiclass":
            out[spec.name]["accuracy"] = float((targets.argmax(1) == scores.argmax(1)).mean())
    return out


def primary_score(scores: dict[str, float]) -> float:
    """Accuracy when present (multi-class), else mAP."""
    return scores.get("accuracy", scores["mAP"])


def fit(recipe: Recipe, samples: Sequence[Sample], specs: Sequence[TaskSpec], run_dir: Path,
        resume: bool = False, progress: NullProgress | None = None, init_encoder: Path | None = None,
        cache: FeatureCache | None = None) -> FitResult:
    """Train the recipe's model on ``samples``, saving logs and checkpoints into ``run_dir``.

    Args:
        recipe: the validated recipe.
        samples: every sample of the dataset (all splits).
        specs: the labeled tasks with their vocabularies.
        run_dir: the run directory (exists already).
        resume: continue from ``run_dir/checkpoints/last.pt``.
        progress: receives progress reports (a rich display in the CLI).
        init_encoder: start the encoder from this encoder checkpoint (a
            pretraining stage's ``encoder.pt``) instead of ``model.pretrained``.
        cache: the recipe's feature cache, opened already (else opened here when it has one).
    """
    progress = progress or NullProgress()
    o, t = recipe.optim, recipe.train
    settings = loop_settings(recipe, t.epochs, o.schedule, o.warmup_epochs, t.checkpoint_minutes, o.grad_clip)
    device, process = settings.device, settings.process
    torch.manual_seed(recipe.run.seed)
    if cache is None:
        cache = open_feature_cache(recipe, samples)  # None: train from frames
    model = build_model(recipe, specs, cache)
    if init_encoder is not None:
        model.encoder.load_backbone_state(load_encoder_state(init_encoder, recipe.model.encoder), str(init_encoder))
    model = sync_batchnorm(model, settings, recipe.run.sync_batchnorm).to(device)
    objectives = [objective.to(device) for objective in build_objectives(recipe, samples, specs)]
    teacher = build_teacher(recipe, model)
    compile_encoder(model, recipe.run.compile)  # after the teacher's copy: the student's forward is compiled
    streams = build_streams(recipe, samples, specs, device.type == "cuda", process.rank, process.world_size, cache)
    if streams.labeled_sampler.epochs.plan is not None:
        progress.message(f"labeled stream re-balanced ({t.balance}): "
                         f"{streams.labeled_sampler.epochs.plan.length} trailers per pass, drawn afresh each pass")
    if recipe.synthetic_moves is not None:
        m = recipe.synthetic_moves
        progress.message(f"synthetic camera moves: {m.rate:.0%} of {', '.join(m.sources)} clips become "
                         f"{', '.join(m.moves)}")
    # each process scores its share of validation; rank 0 gathers and judges
    d = recipe.data
    val_share = split_samples(samples, "val")[process.rank::process.world_size]
    val_loader = build_eval_loader(val_share, specs, d.image_size, d.eval_frames, t.eval_batch_size, d.num_workers,
                                   device.type == "cuda", cache, decoder=d.decoder)
    # methods that pseudo-label are calibrated and judged on validation clips as long as their unlabeled ones
    frames = pseudo_label_frames(recipe, objectives)
    clip_loader = None if frames is None else build_eval_loader(val_share, specs, d.image_size, frames,
                                                                 t.eval_batch_size, d.num_workers,
                                                                 device.type == "cuda", cache)
    normalize = input_transform(model).to(device)

    def scored(evaluated: nn.Module, loader) -> Predictions:
        return Predictions.concat(distributed.gather_objects(
            predict(evaluated, loader, normalize, specs, device, settings.amp_dtype)))

    def validate(evaluated: nn.Module) -> tuple[dict[str, Any], float]:
        predictions = scored(evaluated, val_loader)
        check_split("val", split_samples(samples, "val"), predictions.unreadable, recipe.data.max_unreadable)
        val = validation_scores(predictions, specs)
        score = float(np.nanmean([primary_score(v) for v in val.values()]))
        clips = predictions if clip_loader is None else scored(evaluated, clip_loader)
        return {"val": val, "val_score": score, "val_samples": len(predictions.ids),
                **pseudo_label_quality(objectives, clips),
                "unreadable": {"val": len(predictions.unreadable)}}, score

    stage = Stage(model, objectives, build_optimizers(recipe, objectives, model), streams,
                  {name: view.to(device) for name, view in build_augmentations(recipe, model, cache).items()},
                  validate,
                  teacher, evaluate_teacher=teacher is not None and (recipe.ema is None or recipe.ema.evaluate))
    return train_stage(stage, settings, run_dir, resume, progress)


def pseudo_label_frames(recipe: Recipe, objectives: Sequence[Objective]) -> int | None:
    """The frames per clip on which validation also scores the model for the objectives that
    pseudo-label (those with ``pseudo_label_quality``): as many as their unlabeled clips have
    (the largest ``frames_per_trailer`` of the consistency methods), so that thresholds measured
    on validation (FixMatch's ``min_precision``) hold for the clips they are applied to. None
    when no objective pseudo-labels or validation already scores clips that long."""
    frames = max((c.frames_per_trailer for c in recipe.consistency), default=0)
    if not any(hasattr(o, "pseudo_label_quality") for o in objectives) or frames in (0, recipe.data.eval_frames):
        return None
    return frames


def pseudo_label_quality(objectives: Sequence[Objective], predictions: Predictions) -> dict[str, Any]:
    """``{"pseudo_labels": {method: {task: {mask_rate, precision}}}}`` on validation (``predictions``
    of clips as long as the unlabeled ones, :func:`pseudo_label_frames`), for the objectives that
    pseudo-label (empty without them), after those that calibrate on validation (FixMatch's
    ``min_precision``) have."""
    for o in objectives:  # measured where labels are known: guards that pseudo-labels must clear
        if hasattr(o, "calibrate"):
            o.calibrate(predictions.scores, predictions.targets, predictions.labeled)
    quality = {o.short_name: o.pseudo_label_quality(predictions.scores, predictions.targets, predictions.labeled)
               for o in objectives if hasattr(o, "pseudo_label_quality")}
    return {"pseudo_labels": quality} if quality else {}
