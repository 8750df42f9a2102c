"""The contrastive pretraining stage: SimCLR on unlabeled frames, with lightly.

:func:`pretrain` trains the shared encoder plus lightly's
``SimCLRProjectionHead`` with lightly's ``NTXentLoss`` on two kornia views of
every frame, and writes ``RUN_DIR/pretrain/encoder.pt``, which the
fine-tuning stage starts from. Each epoch it probes the frozen encoder with a
k-nearest-neighbour classifier (labeled train -> val): labels never reach the
encoder, but the log shows whether the features are becoming useful.

Everything this stage writes sits in ``RUN_DIR/pretrain/``: ``metrics.jsonl``,
``tensorboard/``, ``checkpoints/last.pt`` (resume) and ``encoder.pt``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from semisup.augment import ContrastiveViews, FrameNormalize
from semisup.config import Recipe
from semisup.data.health import ReadTally
from semisup.data.loaders import EpochBatchSampler, TrailerFrames, clip_picker, collate_clips, make_loader
from semisup.data.samples import Sample, TaskSpec, labeled_pool, split_samples, unlabeled_pool
from semisup.device import autocast, needs_grad_scaler, resolve_device, resolve_precision
from semisup.evaluate.inference import embed, mean_frame_features
from semisup.evaluate.knn import knn_scores
from semisup.evaluate.metrics import mean_average_precision
from semisup.models import Encoder
from semisup.train.checkpoints import load_checkpoint, save_encoder, set_rng_state
from semisup.train.logs import RunLogger
from semisup.train.loop import Checkpointer, TrainState, optimiser_step, set_lr
from semisup.train.progress import NullProgress
from semisup.train.setup import build_eval_loader, lr_factor

PRETRAIN_STREAM = 3


def encoder_path(run_dir: Path) -> Path:
    """Where the pretraining stage leaves the encoder for fine-tuning."""
    return run_dir / "pretrain" / "encoder.pt"


def knn_probe(encoder: Encoder, train: Sequence[Sample], val: Sequence[Sample], specs: Sequence[TaskSpec],
              recipe: Recipe, device: torch.device, amp_dtype: torch.dtype | None, k: int) -> dict[str, dict]:
    """kNN (cosine) scores of the frozen encoder's trailer embeddings, labeled train -> val, per task:
    mAP, and accuracy for multi-class tasks."""
    normalize = FrameNormalize(encoder.mean, encoder.std).to(device)
    d = recipe.data

    def features(samples: Sequence[Sample]) -> np.ndarray:
        loader = build_eval_loader(samples, specs, d.image_size, d.eval_frames, recipe.train.eval_batch_size,
                                   d.num_workers)
        return embed(mean_frame_features(encoder), loader, normalize, device, amp_dtype)[1]

    train_features, val_features = features(train), features(val)
    out = {}
    for spec in specs:
        train_rows = [i for i, s in enumerate(train) if s.labels.get(spec.name) is not None]
        val_rows = [i for i, s in enumerate(val) if s.labels.get(spec.name) is not None]
        if not train_rows or not val_rows:
            continue
        targets = np.stack([spec.encode(train[i].labels[spec.name]) for i in train_rows])
        truth = np.stack([spec.encode(val[i].labels[spec.name]) for i in val_rows])
        scores = knn_scores(train_features[train_rows], targets, val_features[val_rows], k)
        out[spec.name] = {"mAP": mean_average_precision(truth, scores)}
        if spec.kind == "multiclass":
            out[spec.name]["accuracy"] = float((truth.argmax(1) == scores.argmax(1)).mean())
    return out


def pretrain(recipe: Recipe, samples: Sequence[Sample], specs: Sequence[TaskSpec], run_dir: Path,
             resume: bool = False, progress: NullProgress | None = None) -> Path:
    """Run the recipe's ``[pretrain]`` stage; return the path of the pretrained encoder.

    Args:
        recipe: a recipe with a ``[pretrain]`` section.
        samples: the dataset's samples; unlabeled ones (and, by option, the
            labeled train ones) are used, without labels.
        specs: the tasks, for the kNN probe only.
        run_dir: the run directory.
        resume: continue from ``run_dir/pretrain/checkpoints/last.pt``.
        progress: progress display.
    """
    cfg, m, d = recipe.pretrain, recipe.model, recipe.data
    progress = progress or NullProgress()
    out = run_dir / "pretrain"
    device = resolve_device(recipe.run.device)
    amp_dtype = resolve_precision(device, recipe.run.precision)
    torch.manual_seed(recipe.run.seed)
    stages = m.trainable_stages if cfg.trainable_stages == "auto" else cfg.trainable_stages
    encoder = Encoder(m.encoder, m.pretrained, stages, channels_last=m.channels_last).to(device)
    encoder.check_image_size(d.image_size)
    head = SimCLRProjectionHead(encoder.num_features, cfg.projection_hidden, cfg.projection_dim).to(device)
    criterion = NTXentLoss(temperature=cfg.temperature)
    views = ContrastiveViews(d.image_size, encoder.mean, encoder.std, cfg.crop_scale_min, cfg.color_jitter,
                             cfg.grayscale, cfg.blur).to(device)
    optimizer = torch.optim.Adam(encoder.trainable_parameters() + list(head.parameters()), lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    optimizers = {"simclr": optimizer}
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, amp_dtype))

    state, saved = TrainState(), {}
    if resume:
        saved = load_checkpoint(out / "checkpoints" / "last.pt")
        encoder.load_state_dict(saved["encoder"])
        head.load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        state = TrainState.from_dict(saved["state"])
        set_rng_state(saved["rng"])

    pool = unlabeled_pool(samples, include_labeled=cfg.include_labeled)
    per_step = max(2, cfg.batch_size // cfg.frames_per_trailer)
    sampler = EpochBatchSampler(len(pool), per_step, recipe.run.seed, PRETRAIN_STREAM, drop_last=True)
    loader = make_loader(TrailerFrames(pool, (), d.image_size, clip_picker(cfg.frames_per_trailer)), sampler,
                         collate_clips, d.num_workers, pin_memory=device.type == "cuda")
    knn_train, knn_val = labeled_pool(samples), [s for s in split_samples(samples, "val") if s.is_labeled()]
    steps, epochs = len(sampler), cfg.epochs
    reads = ReadTally("pretraining", pool, d.max_unreadable)
    if "reads" in saved:
        reads.load_state_dict(saved["reads"])
    logger = RunLogger(out, resume_epoch=state.epoch if resume else None, resume_step=state.epoch * steps + state.batch)
    checkpointer = Checkpointer(out / "checkpoints" / "last.pt", lambda: {
        "encoder": encoder.state_dict(), "head": head.state_dict(), "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(), "reads": reads.state_dict()}, state, cfg.checkpoint_minutes)

    if state.epoch == 0 and state.batch == 0:  # where the encoder starts: the baseline for the probe
        logger.log_epoch({"stage": "pretrain", "epoch": 0, "loss": None,
                          "knn": knn_probe(encoder, knn_train, knn_val, specs, recipe, device, amp_dtype, cfg.knn_k)},
                         step=0)
    progress.start(epochs * steps, state.epoch * steps + state.batch)
    try:
        while state.epoch < epochs:
            encoder.train()
            head.train()
            progress.start_epoch(state.epoch, epochs, steps, state.batch)
            sampler.set_epoch(state.epoch, state.batch)
            for batch in loader:
                tic = time.perf_counter()
                state.bad_frames.update(batch.bad_frames)
                reads.add(batch.indices.tolist(), batch.unreadable)
                reads.check_early()
                set_lr(optimizers, lr_factor(state.epoch * steps + state.batch, epochs * steps,
                                             round(cfg.warmup_epochs * steps), cfg.schedule))
                frames = batch.frames.to(device, non_blocking=True).flatten(0, 1)
                loss = torch.zeros((), device=device)
                if len(frames) > 1:  # NT-Xent needs two frames (none: every trailer was unreadable)
                    first, second = views(frames), views(frames)          # two random views of every frame
                    with autocast(device, amp_dtype):
                        z1, z2 = head(encoder(first)), head(encoder(second))
                    loss = criterion(z1.float(), z2.float())
                    optimiser_step(loss, optimizer, scaler)
                state.batch += 1
                state.add(steps=1, loss=loss.item(), images=2 * len(frames), seconds=time.perf_counter() - tic)
                progress.advance({"nt-xent": state.mean("loss"), "img/s": state.images_per_s()})
                checkpointer.save_if_due()
            reads.check()
            record: dict[str, Any] = {
                "stage": "pretrain", "epoch": state.epoch + 1, "loss": state.mean("loss"),
                "knn": knn_probe(encoder, knn_train, knn_val, specs, recipe, device, amp_dtype, cfg.knn_k),
                "lr": optimizer.param_groups[0]["lr"], "images_per_s": state.images_per_s(),
                "corrupt_frames": len(state.bad_frames), "unreadable_trailers": len(reads.unreadable),
                "elapsed_s": round(checkpointer.elapsed(), 1)}
            logger.log_epoch(record, step=(state.epoch + 1) * steps)
            progress.end_epoch(record)
            state.next_epoch()
            checkpointer.save()
    finally:
        progress.close(failed=sys.exc_info()[0] is not None)
        logger.close()
    path = encoder_path(run_dir)
    save_encoder(path, m.encoder, encoder.model.state_dict())
    return path
