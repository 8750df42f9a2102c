"""The training loop: labeled step, pretext steps, optimisation, validation, checkpoints.

:func:`fit` reads top to bottom. Each training step:

1. takes a batch of labeled trailers, augments it, computes the Asymmetric
   Loss of every task head and (``optim.mode = "separate"``) steps the
   supervised Adam over the task heads plus the trainable encoder;
2. takes a batch of unlabeled trailers, augments it without flips, computes
   each pretext task's loss and steps that task's own Adam over its head plus
   the trainable encoder;
3. (``optim.mode = "joint"``) instead steps one Adam on the weighted sum.

After each epoch the model is scored on validation (mean mAP over tasks),
``last.pt`` is saved, and ``best.pt`` when the score improved. ``last.pt`` is
also saved inside an epoch every ``train.checkpoint_minutes``; a resumed run
restarts at exactly the saved step, with the same random state.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from semisup.augment import FrameNormalize
from semisup.config import Recipe
from semisup.data.health import ReadTally, check_split
from semisup.data.samples import Sample, TaskSpec, split_samples
from semisup.device import autocast, needs_grad_scaler, resolve_device, resolve_precision
from semisup.evaluate.inference import predict
from semisup.evaluate.metrics import mean_average_precision
from semisup.evaluate.predictions import Predictions
from semisup.pretext import pretext_key
from semisup.models.encoder import load_exact
from semisup.train.checkpoints import (load_checkpoint, load_encoder_state, rng_state, save_checkpoint,
                                       set_rng_state)
from semisup.train.logs import RunLogger
from semisup.train.progress import NullProgress
from semisup.train.setup import (Streams, build_augmentations, build_eval_loader, build_losses, build_model,
                                 build_optimizers, build_streams, lr_factor)


@dataclass
class FitResult:
    """Where training ended up."""

    best_epoch: int
    """1-based: the epoch after which best.pt was saved."""
    best_score: float
    epochs: int
    seconds: float
    """Wall time of training, summed over every session of a resumed run."""


@dataclass
class TrainState:
    """Everything besides weights and optimisers that a resumed run needs.

    Attributes:
        epoch, batch: the next step to run (``epoch`` = epochs completed).
        best_score, best_epoch: best validation score so far (mean over tasks of
            mAP or accuracy) and the 1-based epoch that reached it.
        sums: running sums of the current epoch's statistics.
        bad_frames: unreadable frame files met so far.
        elapsed: training seconds of earlier sessions.
    """

    epoch: int = 0
    batch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    bad_frames: set[str] = field(default_factory=set)
    elapsed: float = 0.0

    def add(self, **values: float) -> None:
        """Add to the epoch's running sums."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def mean(self, key: str) -> float:
        """Mean of a summed statistic over the epoch's steps so far."""
        return self.sums.get(key, 0.0) / max(1.0, self.sums.get("steps", 0.0))

    def images_per_s(self) -> float:
        return self.sums.get("images", 0.0) / max(self.sums.get("seconds", 0.0), 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "best_score": self.best_score,
                "best_epoch": self.best_epoch, "sums": dict(self.sums), "bad_frames": sorted(self.bad_frames),
                "elapsed": self.elapsed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainState":
        return cls(data["epoch"], data["batch"], data["best_score"], data["best_epoch"], dict(data["sums"]),
                   set(data["bad_frames"]), data["elapsed"])

    def next_epoch(self) -> None:
        """Move to the first step of the next epoch, with fresh running sums."""
        self.epoch, self.batch, self.sums = self.epoch + 1, 0, {}


class Checkpointer:
    """Saves a loop's ``last.pt`` and keeps its wall time across resumed sessions.

    ``payload`` returns what to save besides the random state and the
    :class:`TrainState` (weights, optimisers, scalers); :meth:`save` adds both.
    """

    def __init__(self, path: Path, payload: Callable[[], dict[str, Any]], state: TrainState, minutes: float):
        self.path, self.payload, self.state, self.interval = path, payload, state, minutes * 60
        self.session_start = self.last_save = time.monotonic()
        self.elapsed_before = state.elapsed

    def elapsed(self) -> float:
        """Training seconds so far, earlier sessions included."""
        return self.elapsed_before + time.monotonic() - self.session_start

    def save(self) -> None:
        self.state.elapsed = self.elapsed()
        save_checkpoint(self.path, {**self.payload(), "rng": rng_state(), "state": self.state.to_dict()})
        self.last_save = time.monotonic()

    def save_if_due(self) -> None:
        """Save inside an epoch once ``minutes`` have passed since the last save."""
        if time.monotonic() - self.last_save > self.interval:
            self.save()


def optimiser_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   grad_clip: float = 0.0) -> None:
    """zero_grad -> backward (scaled for fp16) -> optional gradient clipping -> step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


def clip_frames(clips: torch.Tensor, frames: int) -> torch.Tensor:
    """The ``frames`` evenly spaced frames (in time order) of ``(B, T, ...)`` clips,
    for a pretext task that asked for fewer frames than the stream carries."""
    t = clips.shape[1]
    if frames >= t:
        return clips
    return clips[:, ((torch.arange(frames) + 0.5) * t / frames).long()]


def set_lr(optimizers: dict[str, torch.optim.Optimizer], factor: float) -> None:
    """Scale every parameter group's ``initial_lr`` by the schedule's ``factor``."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor


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


def stream_tallies(streams: Streams, max_unreadable: float, saved: dict[str, Any]) -> dict[str, ReadTally]:
    """A :class:`ReadTally` per training stream, restored from a checkpoint's ``reads``."""
    tallies = {"labeled": ReadTally("labeled train", streams.labeled.dataset.samples, max_unreadable)}
    if streams.unlabeled is not None:
        tallies["unlabeled"] = ReadTally("unlabeled", streams.unlabeled.dataset.samples, max_unreadable)
    for name, tally in tallies.items():
        if name in saved:
            tally.load_state_dict(saved[name])
    return tallies


def record_reads(tallies: dict[str, ReadTally], **batches: Any) -> None:
    """Count each stream's batch (trailers read, trailers without a readable frame) and
    stop at once if a stream has read nothing but unreadable trailers."""
    for name, batch in batches.items():
        if batch is not None:
            tallies[name].add(batch.indices.tolist(), batch.unreadable)
            tallies[name].check_early()


def primary_score(scores: dict[str, float]) -> float:
    """Accuracy when present (multi-class), else mAP."""
    return scores.get("accuracy", scores["mAP"])


def fit(recipe: Recipe, samples: Sequence[Sample], specs: Sequence[TaskSpec], run_dir: Path,
        resume: bool = False, progress: NullProgress | None = None, init_encoder: Path | None = None) -> FitResult:
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
    """
    progress = progress or NullProgress()
    device = resolve_device(recipe.run.device)
    amp_dtype = resolve_precision(device, recipe.run.precision)
    torch.manual_seed(recipe.run.seed)
    model = build_model(recipe, specs).to(device)
    if init_encoder is not None:
        load_exact(model.encoder.model, load_encoder_state(init_encoder, recipe.model.encoder), str(init_encoder))
    optimizers = build_optimizers(recipe, model)
    scalers = {name: torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, amp_dtype))
               for name in optimizers}
    losses = {name: loss.to(device) for name, loss in build_losses(recipe, samples, specs).items()}
    size, mean, std = recipe.data.image_size, model.encoder.mean, model.encoder.std
    augment, augment_pretext = (a.to(device) for a in build_augmentations(recipe, model))
    normalize = FrameNormalize(mean, std).to(device)
    weights = {pretext_key(p.name): p.weight for p in recipe.pretext}
    joint, grad_clip = "joint" in optimizers, recipe.optim.grad_clip
    ckpt_dir = run_dir / "checkpoints"

    # Where to start: from scratch, or exactly where last.pt stopped.
    state, saved = TrainState(), {}
    if resume:
        saved = load_checkpoint(ckpt_dir / "last.pt")
        model.load_state_dict(saved["model"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(saved["optimizers"][name])
            scalers[name].load_state_dict(saved["scalers"][name])
        state = TrainState.from_dict(saved["state"])
        set_rng_state(saved["rng"])

    pin = device.type == "cuda"
    streams = build_streams(recipe, samples, specs, pin_memory=pin)
    steps = streams.steps_per_epoch
    if streams.labeled_sampler.epochs.plan is not None:
        progress.message(f"labeled stream re-balanced ({recipe.train.balance}): "
                         f"{streams.labeled_sampler.epochs.plan.length} trailers per pass, drawn afresh each pass")
    if recipe.synthetic_moves is not None:
        m = recipe.synthetic_moves
        progress.message(f"synthetic camera moves: {m.rate:.0%} of {', '.join(m.sources)} clips become "
                         f"{', '.join(m.moves)}")
    streams.labeled_sampler.start_batch = state.epoch * steps + state.batch  # one labeled batch per step
    val_loader = build_eval_loader(split_samples(samples, "val"), specs, size, recipe.data.eval_frames,
                                   recipe.train.eval_batch_size, recipe.data.num_workers, pin)
    epochs, total_steps = recipe.train.epochs, recipe.train.epochs * steps
    warmup_steps = round(recipe.optim.warmup_epochs * steps)
    tallies = stream_tallies(streams, recipe.data.max_unreadable, saved.get("reads", {}))
    logger = RunLogger(run_dir, resume_epoch=state.epoch if resume else None,
                       resume_step=state.epoch * steps + state.batch)
    checkpointer = Checkpointer(ckpt_dir / "last.pt", lambda: {
        "model": model.state_dict(), "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
        "scalers": {n: s.state_dict() for n, s in scalers.items()},
        "reads": {n: t.state_dict() for n, t in tallies.items()}}, state, recipe.train.checkpoint_minutes)

    encoded = 0  # images through the encoder in pretext tasks, for images/s

    def encode(images: torch.Tensor) -> torch.Tensor:
        nonlocal encoded
        encoded += len(images)
        return model.encoder(images)

    labeled_batches = iter(streams.labeled)
    progress.start(total_steps, state.epoch * steps + state.batch)
    reported_bad = len(state.bad_frames)
    try:
        while state.epoch < epochs:
            model.train()
            progress.start_epoch(state.epoch, epochs, steps, state.batch)
            unlabeled_batches = streams.unlabeled_epoch(state.epoch, state.batch)
            while state.batch < steps:
                tic, encoded = time.perf_counter(), 0
                set_lr(optimizers, lr_factor(state.epoch * steps + state.batch, total_steps, warmup_steps,
                                             recipe.optim.schedule))
                labeled, unlabeled = next(labeled_batches), next(unlabeled_batches)
                state.bad_frames.update(labeled.bad_frames + (unlabeled.bad_frames if unlabeled else []))
                record_reads(tallies, labeled=labeled, unlabeled=unlabeled)  # stops a run on unreadable data

                # 1. Supervised: each task's loss (ASL or cross-entropy) on the labeled trailers.
                supervised = torch.zeros((), device=device)
                if labeled.num_trailers:  # zero only if every trailer of the batch was unreadable
                    frames = augment(labeled.frames.to(device, non_blocking=True), labeled.owner.to(device))
                    with autocast(device, amp_dtype):
                        logits = model(frames, labeled.owner.to(device), labeled.num_trailers)
                    supervised = sum(losses[s.name](logits[s.name], labeled.targets[s.name].to(device),
                                                    labeled.has_label[s.name].to(device)) for s in specs)
                    if not joint:
                        optimiser_step(supervised, optimizers["supervised"], scalers["supervised"], grad_clip)

                # 2. Pretext tasks on the unlabeled trailers, each with its own optimiser.
                pretext = {}
                if unlabeled is not None and len(unlabeled.frames):
                    b, t = unlabeled.frames.shape[:2]
                    clips = augment_pretext(unlabeled.frames.to(device, non_blocking=True).flatten(0, 1),
                                            torch.arange(b, device=device).repeat_interleave(t))
                    clips = clips.view(b, t, *clips.shape[1:])
                    for name, task in model.pretext.items():
                        with autocast(device, amp_dtype):
                            pretext[name] = task(clip_frames(clips, task.frames), encode)
                        if not joint:
                            key = f"pretext/{name}"
                            optimiser_step(pretext[name].loss, optimizers[key], scalers[key], grad_clip)

                # 3. Joint mode: one step on the weighted sum of all losses.
                total = supervised + sum(weights[n] * out.loss for n, out in pretext.items())
                if joint and total.requires_grad:
                    optimiser_step(total, optimizers["joint"], scalers["joint"], grad_clip)

                state.batch += 1
                state.add(steps=1, loss=supervised.item(), images=len(labeled.frames) + encoded,
                          synthetic=labeled.synthetic,
                          seconds=time.perf_counter() - tic,
                          **{f"{n}_loss": out.loss.item() for n, out in pretext.items()},
                          **{f"{n}_acc": out.accuracy.item() for n, out in pretext.items()})
                progress.advance({"loss": state.mean("loss"), **{n: state.mean(f"{n}_loss") for n in pretext},
                                  "img/s": state.images_per_s()})
                checkpointer.save_if_due()

            # End of epoch: check what was unreadable, validate, log, checkpoint.
            for tally in tallies.values():
                tally.check()
            val_predictions = predict(model, val_loader, normalize, specs, device, amp_dtype)
            check_split("val", val_loader.dataset.samples, val_predictions.unreadable, recipe.data.max_unreadable)
            val = validation_scores(val_predictions, specs)
            score = float(np.nanmean([primary_score(v) for v in val.values()]))
            improved = score > state.best_score
            if improved:
                state.best_score, state.best_epoch = score, state.epoch + 1
                save_checkpoint(ckpt_dir / "best.pt", {"model": model.state_dict(), "epoch": state.epoch + 1,
                                                       "score": score})
            record: dict[str, Any] = {
                "epoch": state.epoch + 1, "loss": state.mean("loss"),
                "pretext": {n: {"loss": state.mean(f"{n}_loss"), "accuracy": state.mean(f"{n}_acc")}
                            for n in model.pretext},
                "val": val, "val_score": score,
                "best": improved, "lr": optimizers[next(iter(optimizers))].param_groups[0]["lr"],
                "images_per_s": state.images_per_s(), "corrupt_frames": len(state.bad_frames),
                "synthetic_clips": int(state.sums.get("synthetic", 0)),
                "unreadable_trailers": {**{n: len(t.unreadable) for n, t in tallies.items()},
                                        "val": len(val_predictions.unreadable)},
                "elapsed_s": round(checkpointer.elapsed(), 1)}
            logger.log_epoch(record, step=(state.epoch + 1) * steps)
            progress.end_epoch(record)
            if len(state.bad_frames) > reported_bad:
                progress.message(f"warning: skipped {len(state.bad_frames)} unreadable frames so far, "
                                 f"e.g. {sorted(state.bad_frames)[0]}")
                reported_bad = len(state.bad_frames)
            state.next_epoch()
            checkpointer.save()
    finally:
        progress.close(failed=sys.exc_info()[0] is not None)
        logger.close()
    return FitResult(state.best_epoch, state.best_score, epochs, checkpointer.elapsed())
