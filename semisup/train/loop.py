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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from semisup.augment import FrameAugment, FrameNormalize
from semisup.config import Recipe
from semisup.data.samples import Sample, TaskSpec, split_samples
from semisup.device import autocast, needs_grad_scaler, resolve_device, resolve_precision
from semisup.evaluate.inference import predict
from semisup.evaluate.metrics import mean_average_precision
from semisup.losses import AsymmetricLoss
from semisup.pretext import pretext_key
from semisup.train.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from semisup.train.logs import RunLogger
from semisup.train.progress import NullProgress
from semisup.train.setup import build_eval_loader, build_model, build_optimizers, build_streams, lr_factor


@dataclass
class FitResult:
    """Where training ended up."""

    best_epoch: int
    best_score: float
    epochs: int
    seconds: float
    """Wall time of training, summed over every session of a resumed run."""


@dataclass
class EpochSums:
    """Running sums of one epoch's statistics (saved in checkpoints, so resumed epochs log the same)."""

    sums: dict[str, float] = field(default_factory=dict)

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def mean(self, key: str) -> float:
        return self.sums.get(key, 0.0) / max(1.0, self.sums.get("steps", 0.0))


def fit(recipe: Recipe, samples: Sequence[Sample], specs: Sequence[TaskSpec], run_dir: Path,
        resume: bool = False, progress: NullProgress | None = None) -> FitResult:
    """Train the recipe's model on ``samples``, saving logs and checkpoints into ``run_dir``.

    Args:
        recipe: the validated recipe.
        samples: every sample of the dataset (all splits).
        specs: the labeled tasks with their vocabularies.
        run_dir: the run directory (exists already).
        resume: continue from ``run_dir/checkpoints/last.pt``.
        progress: receives progress reports (a rich display in the CLI).
    """
    progress = progress or NullProgress()
    device = resolve_device(recipe.run.device)
    amp_dtype = resolve_precision(device, recipe.run.precision)
    torch.manual_seed(recipe.run.seed)
    model = build_model(recipe, specs).to(device)
    optimizers = build_optimizers(recipe, model)
    scalers = {name: torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, amp_dtype))
               for name in optimizers}
    task_loss = AsymmetricLoss(recipe.loss.gamma_neg, recipe.loss.gamma_pos, recipe.loss.clip, recipe.loss.eps,
                               recipe.loss.reduction)
    size, mean, std = recipe.data.image_size, model.encoder.mean, model.encoder.std
    augment = FrameAugment(size, mean, std, hflip=True).to(device)
    augment_pretext = FrameAugment(size, mean, std, hflip=False).to(device)  # flips would blur SESEMI's targets
    normalize = FrameNormalize(mean, std).to(device)
    weights = {pretext_key(p.name): p.weight for p in recipe.pretext}
    joint = "joint" in optimizers
    ckpt_dir = run_dir / "checkpoints"

    # Where to start: from scratch, or exactly where last.pt stopped.
    epoch0, batch0, best_score, best_epoch, sums, bad_frames = 0, 0, -math.inf, -1, EpochSums(), set()
    elapsed_before = 0.0  # training seconds of earlier sessions of this run
    if resume:
        state = load_checkpoint(ckpt_dir / "last.pt")
        model.load_state_dict(state["model"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
            scalers[name].load_state_dict(state["scalers"][name])
        epoch0, batch0 = state["position"]["epoch"], state["position"]["batch"]
        best_score, best_epoch = state["best"]["score"], state["best"]["epoch"]
        sums, bad_frames = EpochSums(dict(state["epoch_sums"])), set(state["bad_frames"])
        elapsed_before = state["elapsed"]
        set_rng_state(state["rng"])

    pin = device.type == "cuda"
    streams = build_streams(recipe, samples, specs, pin_memory=pin)
    steps = streams.steps_per_epoch
    streams.labeled_sampler.start_batch = epoch0 * steps + batch0  # one labeled batch per step
    val_loader = build_eval_loader(split_samples(samples, "val"), specs, size, recipe.data.eval_frames,
                                   recipe.train.eval_batch_size, recipe.data.num_workers, pin)
    epochs, total_steps = recipe.train.epochs, recipe.train.epochs * steps
    warmup_steps = round(recipe.optim.warmup_epochs * steps)
    logger = RunLogger(run_dir, resume_epoch=epoch0 if resume else None, resume_step=epoch0 * steps + batch0)

    def checkpoint(epoch: int, batch: int) -> None:
        save_checkpoint(ckpt_dir / "last.pt", {
            "model": model.state_dict(),
            "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
            "scalers": {n: s.state_dict() for n, s in scalers.items()},
            "rng": rng_state(), "position": {"epoch": epoch, "batch": batch},
            "best": {"score": best_score, "epoch": best_epoch}, "epoch_sums": sums.sums,
            "bad_frames": sorted(bad_frames), "elapsed": elapsed()})

    session_start = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - session_start

    def optimise(loss: torch.Tensor, name: str) -> None:
        optimizer, scaler = optimizers[name], scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if recipe.optim.grad_clip > 0:
            scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, recipe.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    encoded = 0  # images through the encoder, for images/s

    def encode(images: torch.Tensor) -> torch.Tensor:
        nonlocal encoded
        encoded += len(images)
        return model.encoder(images)

    labeled_batches = iter(streams.labeled)
    progress.start(total_steps, epoch0 * steps + batch0)
    last_save, reported_bad = time.monotonic(), len(bad_frames)
    try:
        for epoch in range(epoch0, epochs):
            start = batch0 if epoch == epoch0 else 0
            model.train()
            progress.start_epoch(epoch, epochs, steps, start)
            unlabeled_batches = streams.unlabeled_epoch(epoch, start)
            for batch_index in range(start, steps):
                tic, encoded = time.perf_counter(), 0
                factor = lr_factor(epoch * steps + batch_index, total_steps, warmup_steps, recipe.optim.schedule)
                for optimizer in optimizers.values():
                    for group in optimizer.param_groups:
                        group["lr"] = group["initial_lr"] * factor
                labeled, unlabeled = next(labeled_batches), next(unlabeled_batches)
                bad_frames.update(labeled.bad_frames + (unlabeled.bad_frames if unlabeled else []))

                # 1. Supervised: Asymmetric Loss of every task on the labeled trailers.
                frames = augment(labeled.frames.to(device, non_blocking=True))
                with autocast(device, amp_dtype):
                    logits = model(frames, labeled.owner.to(device), labeled.num_trailers)
                supervised = sum(task_loss(logits[s.name], labeled.targets[s.name].to(device),
                                           labeled.has_label[s.name].to(device)) for s in specs)
                if not joint:
                    optimise(supervised, "supervised")

                # 2. Pretext tasks on the unlabeled trailers, each with its own optimiser.
                pretext = {}
                if unlabeled is not None and len(unlabeled.frames):
                    b, t = unlabeled.frames.shape[:2]
                    clips = augment_pretext(unlabeled.frames.to(device, non_blocking=True).flatten(0, 1))
                    clips = clips.view(b, t, *clips.shape[1:])
                    for name, task in model.pretext.items():
                        with autocast(device, amp_dtype):
                            pretext[name] = task(clips, encode)
                        if not joint:
                            optimise(pretext[name].loss, f"pretext/{name}")

                # 3. Joint mode: one step on the weighted sum of all losses.
                if joint:
                    optimise(supervised + sum(weights[n] * out.loss for n, out in pretext.items()), "joint")

                sums.add(steps=1, loss=supervised.item(), images=len(frames) + encoded,
                         seconds=time.perf_counter() - tic,
                         **{f"{n}_loss": out.loss.item() for n, out in pretext.items()},
                         **{f"{n}_acc": out.accuracy.item() for n, out in pretext.items()})
                stats = {"loss": sums.mean("loss"), **{f"{n}": sums.mean(f"{n}_loss") for n in pretext},
                         "img/s": sums.sums["images"] / max(sums.sums["seconds"], 1e-9)}
                progress.advance(stats)
                if time.monotonic() - last_save > recipe.train.checkpoint_minutes * 60:
                    checkpoint(epoch, batch_index + 1)
                    last_save = time.monotonic()

            # End of epoch: validate, log, checkpoint.
            val = predict(model, val_loader, normalize, specs, device, amp_dtype)
            val_map = {s.name: mean_average_precision(val.targets[s.name][val.labeled[s.name]],
                                                      val.scores[s.name][val.labeled[s.name]]) for s in specs}
            score = float(np.nanmean(list(val_map.values())))
            improved = score > best_score
            if improved:
                best_score, best_epoch = score, epoch
                save_checkpoint(ckpt_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch,
                                                       "score": score})
            record: dict[str, Any] = {
                "epoch": epoch, "loss": sums.mean("loss"),
                "pretext": {n: {"loss": sums.mean(f"{n}_loss"), "accuracy": sums.mean(f"{n}_acc")}
                            for n in model.pretext},
                "val": {name: {"mAP": value} for name, value in val_map.items()}, "val_score": score,
                "best": improved, "lr": factor * recipe.optim.lr,
                "images_per_s": sums.sums.get("images", 0) / max(sums.sums.get("seconds", 0), 1e-9),
                "corrupt_frames": len(bad_frames), "elapsed_s": round(elapsed(), 1)}
            logger.log_epoch(record, step=(epoch + 1) * steps)
            progress.end_epoch(record)
            if len(bad_frames) > reported_bad:
                progress.message(f"warning: skipped {len(bad_frames)} unreadable frames so far, "
                                 f"e.g. {sorted(bad_frames)[0]}")
                reported_bad = len(bad_frames)
            sums = EpochSums()
            checkpoint(epoch + 1, 0)
            last_save = time.monotonic()
    finally:
        progress.close()
        logger.close()
    return FitResult(best_epoch, best_score, epochs, elapsed())
