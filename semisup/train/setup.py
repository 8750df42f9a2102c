"""Turn a recipe into training components: losses, objectives, optimisers, augmentations, streams.

This is the one place that reads recipe objects on the training side (the
dataset, the model and evaluation loaders come from :mod:`semisup.build`,
shared with evaluation); every component it builds takes explicit arguments.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from semisup import distributed
from semisup.augment import ContrastiveViews, FeatureAugment, FrameAugment
from semisup.build import labeled_reads_time
from semisup.config import Recipe
from semisup.config.load import balance_task
from semisup.data.balance import BalancedPasses
from semisup.data.cached import CachedTrailers, FeatureCache
from semisup.data.loaders import (CyclingBatchSampler, EpochBatchSampler, TrailerFrames, clip_picker,
                                  collate_clips, collate_packed, make_loader, ordered_picker,
                                  train_picker)
from semisup.data.samples import Sample, TaskSpec, label_counts, labeled_pool, unlabeled_pool
from semisup.data.reversal import TimeReversal
from semisup.data.synthetic import SyntheticMoves
from semisup.device import resolve_device, resolve_precision
from semisup.errors import SemisupError
from semisup.losses import AsymmetricLoss, MulticlassLoss, class_balanced_weights
from semisup.models import Encoder, TrailerModel
from semisup.models.ema import EmaTeacher
from semisup.objectives import Objective, Pretext, SimCLR, Supervised, get_consistency
from semisup.pretext import pretext_key
from semisup.train.engine import LoopSettings
from semisup.train.optimizers import adam_optimizers
from semisup.train.streams import Streams

# Stream ids keep the random draws of the streams independent of each other.
LABELED_STREAM, UNLABELED_STREAM, PRETRAIN_STREAM = 1, 2, 3

# FixMatch's strong view of cached features: feature-space perturbation (no pixels to augment)
STRONG_FEATURE_DROPOUT, STRONG_FEATURE_NOISE = 0.3, 0.1


def unlabeled_needed(recipe: Recipe, pretraining: bool) -> str:
    """What in the recipe cannot go without unlabeled samples, for messages ("" when nothing):
    pretext tasks or consistency methods that may not use the labeled train frames
    (``train.pretext_on_labeled``), or a pretraining stage still to run."""
    needs = []
    if not recipe.train.pretext_on_labeled:
        needs += [f"pretext task {p.name!r}" for p in recipe.pretext]
        needs += [f"consistency method {c.name!r}" for c in recipe.consistency]
    if recipe.pretrain is not None and pretraining:
        needs.append("[pretrain] stage")
    return ", ".join(needs)


def loop_settings(recipe: Recipe, epochs: int, schedule: str, warmup_epochs: float, checkpoint_minutes: float,
                  grad_clip: float) -> LoopSettings:
    """The loop's settings: the device and precision of ``[run]`` (under ``torchrun``, this
    process's device, after joining the process group), the rest as given.

    Raises:
        SemisupError: see :func:`semisup.distributed.join`.
    """
    process, device = distributed.join(resolve_device(recipe.run.device), recipe.run.sync_batchnorm)
    return LoopSettings(epochs, device, resolve_precision(device, recipe.run.precision), schedule, warmup_epochs,
                        grad_clip, checkpoint_minutes, recipe.data.max_unreadable, process,
                        recipe.run.sync_batchnorm and process.distributed, recipe.run.parallel)


def sync_batchnorm(model: nn.Module, settings: LoopSettings, enabled: bool) -> nn.Module:
    """``model`` with BatchNorm layers that compute their statistics over every process's batch
    (``run.sync_batchnorm`` in a data-parallel run on GPUs), else unchanged."""
    if enabled and settings.process.distributed:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def compile_encoder(model: TrailerModel, backend: str) -> None:
    """``torch.compile`` the encoder's backbone in place with ``backend`` (``run.compile``;
    ``"off"``: leave it). In place, so parameter names, ``state_dict`` keys and checkpoints
    stay those of the plain model; an EMA teacher copied before stays uncompiled. A
    cached-feature encoder has nothing to compile."""
    if backend != "off" and isinstance(model.encoder, Encoder):
        model.encoder.model.compile(backend=backend)


def build_losses(recipe: Recipe, samples: Sequence[Sample], specs: Sequence[TaskSpec]) -> dict[str, nn.Module]:
    """Each task's loss: Asymmetric Loss (``[loss]``) for multi-label tasks; for
    multi-class tasks cross-entropy with the task's imbalance options, class
    counts taken from the labeled train samples."""
    configs, asl_config = {t.name: t for t in recipe.tasks}, recipe.loss
    asl = AsymmetricLoss(asl_config.gamma_neg, asl_config.gamma_pos, asl_config.clip, asl_config.eps,
                         asl_config.reduction)
    labeled = labeled_pool(samples)
    losses: dict[str, nn.Module] = {}
    for spec in specs:
        if spec.kind == "multilabel":
            losses[spec.name] = asl
            continue
        t = configs[spec.name]
        found = label_counts(labeled, spec.name)
        counts = [found.get(label, 0) for label in spec.labels]
        weights = class_balanced_weights(counts, t.class_balance) if t.class_balance else None
        losses[spec.name] = MulticlassLoss(t.label_smoothing, t.focal_gamma, weights, t.logit_adjustment, counts)
    return losses


def build_augmentations(recipe: Recipe, model: TrailerModel,
                        cache: FeatureCache | None = None) -> dict[str, nn.Module]:
    """The training views objectives ask for, by name (kornia, on the device):

    * ``labeled``: labeled frames (``[augment]``: crop, rotation, flip);
    * ``pretext``: the same without flips (SESEMI's targets include flips);
    * ``weak`` and ``strong``: unlabeled clips for the consistency objectives,
      the labeled view and the same plus FixMatch's strong operations.

    Each is drawn once per clip where ``augment.per_clip`` says so (the labeled
    and consistency views when a task's aggregator or the encoder reads time
    order, the pretext view when a pretext task does).

    From a feature ``cache`` the views are :class:`FeatureAugment`: labeled and weak
    ones as cached, the strong one with noise and channel dropout.
    """
    if cache is not None:
        views: dict[str, nn.Module] = {"labeled": FeatureAugment()}
        if recipe.consistency:
            views["weak"] = views["labeled"]
            views["strong"] = FeatureAugment(dropout=STRONG_FEATURE_DROPOUT, noise=STRONG_FEATURE_NOISE)
        return views
    a, size, mean, std = recipe.augment, recipe.data.image_size, model.encoder.mean, model.encoder.std

    def per_clip(reads_time: bool) -> bool:
        return a.per_clip == "always" or (a.per_clip == "auto" and reads_time)

    tasks_per_clip = per_clip(labeled_reads_time(recipe))
    common = {"degrees": a.rotation, "scale": (a.crop_scale_min, 1.0)}
    views = {"labeled": FrameAugment(size, mean, std, hflip=a.hflip, per_clip=tasks_per_clip,
                                     scene_motion=a.scene_motion, **common),
             "pretext": FrameAugment(size, mean, std, hflip=0.0, per_clip=per_clip(
                 any(type(task).reads_time for task in model.pretext.values())), **common)}
    if recipe.consistency:
        views["weak"] = views["labeled"]
        views["strong"] = FrameAugment(size, mean, std, hflip=a.hflip, per_clip=tasks_per_clip, strong=True,
                                       strong_colour=a.strong_colour, **common)
    return views


def class_priors(samples: Sequence[Sample], specs: Sequence[TaskSpec]) -> dict[str, torch.Tensor]:
    """Per task, each class's share among the labeled train samples labeled for it
    (multi-label: the positive rate of each label)."""
    labeled = labeled_pool(samples)
    priors = {}
    for spec in specs:
        counts = label_counts(labeled, spec.name)
        n = max(1, sum(s.labels.get(spec.name) is not None for s in labeled))
        priors[spec.name] = torch.tensor([counts.get(label, 0) / n for label in spec.labels])
    return priors


def build_objectives(recipe: Recipe, samples: Sequence[Sample], specs: Sequence[TaskSpec]) -> list[Objective]:
    """The recipe's objectives in step order: supervised, each consistency method (by default
    stepping with the supervised loss, so before anything else moves the weights), each pretext task."""
    losses = build_losses(recipe, samples, specs)
    objectives: list[Objective] = [Supervised(losses)]
    priors = class_priors(samples, specs)
    for c in recipe.consistency:
        method = get_consistency(c.name)
        objectives.append(method(c.options, specs, dict(losses), priors, c.weight, c.warmup_epochs, c.lr,
                                 c.start_epoch, c.own_optimizer))
    objectives += [Pretext(pretext_key(p.name), p.weight, p.lr) for p in recipe.pretext]
    return objectives


def build_optimizers(recipe: Recipe, objectives: Sequence[Objective],
                     model: TrailerModel) -> dict[str, torch.optim.Optimizer]:
    """Adam optimisers by objective name, or one ``joint`` (``[optim]``; see
    :func:`semisup.train.optimizers.adam_optimizers`)."""
    o = recipe.optim
    return adam_optimizers(list(objectives), model, o.mode, o.lr, o.weight_decay)


def build_teacher(recipe: Recipe, model: TrailerModel) -> EmaTeacher | None:
    """The EMA teacher when ``[ema]`` is set or a consistency method needs one (with ``[ema]``'s defaults)."""
    needed = any(get_consistency(c.name).needs_teacher(c.options) for c in recipe.consistency)
    if recipe.ema is None and not needed:
        return None
    if recipe.run.parallel == "fsdp":
        why = "[ema]" if recipe.ema is not None else "a consistency method's teacher"
        raise SemisupError(f'run.parallel = "fsdp": an EMA teacher ({why}) is not supported with sharded '
                           'weights yet; use run.parallel = "ddp"')
    decay = recipe.ema.decay if recipe.ema is not None else 0.999
    return EmaTeacher(model, decay)


def build_streams(recipe: Recipe, samples: Sequence[Sample], specs: Sequence[TaskSpec],
                  pin_memory: bool = False, rank: int = 0, world_size: int = 1,
                  cache: FeatureCache | None = None) -> Streams:
    """Loaders of the labeled and unlabeled training trailers of fine-tuning.

    Labeled trailers give ``data.max_frames`` random frames each (in time
    order), or, when a task's aggregator reads time order, an evenly spaced
    clip of that many frames with a random start. Unlabeled trailers (for
    pretext and consistency objectives) give clips of the largest
    ``frames_per_trailer`` any of them asks for (evenly spaced from a random
    start when a consistency method feeds them to a task that reads time).

    ``rank`` and ``world_size`` shard each pass between the processes of a
    data-parallel run; batch sizes are per process. With a feature ``cache`` both
    streams pick among the trailers' cached frames and serve their features.
    """
    d, t, seed = recipe.data, recipe.train, recipe.run.seed
    labeled = labeled_pool(samples)
    pick = ordered_picker(d.max_frames) if labeled_reads_time(recipe) else train_picker(d.max_frames)
    if cache is not None:
        labeled_set = CachedTrailers(cache, labeled, specs, pick)
    else:
        labeled_set = TrailerFrames(labeled, specs, d.image_size, pick, synthetic_moves(recipe, specs),
                                    time_reversal(recipe, specs), decoder=d.decoder)
    plan = balanced_passes(recipe, labeled, specs)
    labeled_sampler = CyclingBatchSampler(len(labeled), t.labeled_batch_size, seed, LABELED_STREAM,
                                          rank=rank, world_size=world_size, plan=plan)
    labeled_loader = make_loader(labeled_set, labeled_sampler, collate_packed, d.num_workers, pin_memory)
    frames = max([p.frames_per_trailer for p in recipe.pretext] + [c.frames_per_trailer for c in recipe.consistency],
                 default=0)
    if not frames:
        return Streams(labeled_loader, labeled_sampler)
    pool = unlabeled_pool(samples, include_labeled=t.pretext_on_labeled)
    # consistency methods feed unlabeled clips to the task heads: ordered clips, as the labeled ones, for
    # tasks that read time; otherwise (and for pretext tasks alone) random frames, each clip exactly `frames`
    ordered = bool(recipe.consistency) and labeled_reads_time(recipe)
    pool_pick = ordered_picker(frames) if ordered else clip_picker(frames)
    pool_set = (CachedTrailers(cache, pool, (), pool_pick) if cache is not None
                else TrailerFrames(pool, (), d.image_size, pool_pick, decoder=d.decoder))
    if t.epoch_over == "labeled":  # the unlabeled trailers cycle beside the labeled ones
        sampler = CyclingBatchSampler(len(pool), t.unlabeled_batch_size, seed, UNLABELED_STREAM, rank=rank,
                                      world_size=world_size)
    else:
        sampler = EpochBatchSampler(len(pool), t.unlabeled_batch_size, seed, UNLABELED_STREAM, shuffle=True,
                                    drop_last=True, rank=rank, world_size=world_size)
    return Streams(labeled_loader, labeled_sampler, make_loader(pool_set, sampler, collate_clips, d.num_workers,
                                                                pin_memory), sampler, epoch_over=t.epoch_over)


def build_pretrain_streams(recipe: Recipe, samples: Sequence[Sample], pin_memory: bool = False) -> Streams:
    """The pretraining stage's one stream: clips of ``pretrain.frames_per_trailer`` frames of
    the unlabeled trailers (and, by option, the labeled train ones, without labels), about
    ``pretrain.batch_size`` frames per step and process (each process of a data-parallel run
    reads its own share of every epoch)."""
    cfg, d = recipe.pretrain, recipe.data
    pool = unlabeled_pool(samples, include_labeled=cfg.include_labeled)
    per_step = max(2, cfg.batch_size // cfg.frames_per_trailer)
    process = distributed.current()
    sampler = EpochBatchSampler(len(pool), per_step, recipe.run.seed, PRETRAIN_STREAM, drop_last=True,
                                rank=process.rank, world_size=process.world_size)
    loader = make_loader(TrailerFrames(pool, (), d.image_size, clip_picker(cfg.frames_per_trailer),
                                       decoder=d.decoder), sampler,
                         collate_clips, d.num_workers, pin_memory)
    return Streams(unlabeled=loader, unlabeled_sampler=sampler, names={"unlabeled": "pretraining"})


def build_pretrain_objective(recipe: Recipe, model: TrailerModel) -> tuple[SimCLR, dict[str, ContrastiveViews]]:
    """SimCLR and its two-view augmentation (``[pretrain]``)."""
    cfg = recipe.pretrain
    objective = SimCLR(model.encoder.num_features, cfg.projection_hidden, cfg.projection_dim, cfg.temperature,
                       cfg.lr)
    views = ContrastiveViews(recipe.data.image_size, model.encoder.mean, model.encoder.std, cfg.crop_scale_min,
                             cfg.color_jitter, cfg.grayscale, cfg.blur)
    return objective, {"contrastive": views}


def synthetic_moves(recipe: Recipe, specs: Sequence[TaskSpec]) -> SyntheticMoves | None:
    """The synthetic camera moves ``[synthetic_moves]`` asks for (None: off).

    Raises:
        SemisupError: a source or move class is not in the task's vocabulary
            (read from the data when the recipe lists no labels).
    """
    m = recipe.synthetic_moves
    if m is None:
        return None
    vocabulary = next(s.labels for s in specs if s.name == m.task)
    for name in (*m.sources, *m.moves):
        if name not in vocabulary:
            raise SemisupError(f"synthetic_moves: {name!r} is not a label of task {m.task!r} in the data "
                               f"(labels: {', '.join(vocabulary)})")
    return SyntheticMoves(m.task, m.sources, dict(m.moves), m.rate, (m.zoom[0], m.zoom[1]), m.drift, m.keep_labels)


def time_reversal(recipe: Recipe, specs: Sequence[TaskSpec]) -> TimeReversal | None:
    """Labeled clips played backwards, relabelled, as the tasks' ``reversed_labels`` ask (None: off).

    Raises:
        SemisupError: a class of a map that is not in the task's vocabulary (read from the data
            when the recipe lists no labels).
    """
    maps = {t.name: dict(t.reversed_labels) for t in recipe.tasks if t.reversed_labels}
    if not maps:
        return None
    for i, task in enumerate(recipe.tasks):
        vocabulary = next(s.labels for s in specs if s.name == task.name)
        for name in (n for pair in maps.get(task.name, {}).items() for n in pair):
            if name not in vocabulary:
                raise SemisupError(f"tasks.{i}.reversed_labels: {name!r} is not a label of task {task.name!r} in "
                                   f"the data (labels: {', '.join(vocabulary)})")
    return TimeReversal(maps)


def balanced_passes(recipe: Recipe, labeled: Sequence[Sample], specs: Sequence[TaskSpec]) -> BalancedPasses | None:
    """The re-balanced passes of the labeled stream that ``train.balance`` asks for (None: plain passes)."""
    task = balance_task(recipe)
    if task is None:
        return None
    spec = next(s for s in specs if s.name == task.name)
    targets = np.stack([spec.encode(s.labels.get(spec.name)) for s in labeled])
    has_label = np.array([s.labels.get(spec.name) is not None for s in labeled])
    return BalancedPasses(targets, has_label, recipe.train.balance, recipe.run.seed, LABELED_STREAM,
                          recipe.train.repeat_threshold)


