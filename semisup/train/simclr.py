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

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from semisup import distributed
from semisup.train import sharding
from semisup.augment import FrameNormalize
from semisup.build import build_eval_loader
from semisup.checkpoints import save_encoder
from semisup.config import Recipe
from semisup.data.samples import Sample, TaskSpec, labeled_pool, split_samples
from semisup.evaluate.inference import embed, mean_frame_features
from semisup.evaluate.knn import knn_scores
from semisup.evaluate.metrics import mean_average_precision
from semisup.models import Encoder, TrailerModel, create_encoder
from semisup.train.engine import Stage, train_stage
from semisup.train.optimizers import adam_optimizers
from semisup.train.progress import NullProgress
from semisup.train.setup import (build_pretrain_objective, build_pretrain_streams, compile_encoder, loop_settings,
                                 sync_batchnorm)


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
                                   d.num_workers, decoder=d.decoder)
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
    cfg, m = recipe.pretrain, recipe.model
    settings = loop_settings(recipe, cfg.epochs, cfg.schedule, cfg.warmup_epochs, cfg.checkpoint_minutes, 0.0)
    device = settings.device
    torch.manual_seed(recipe.run.seed)
    stages = m.trainable_stages if cfg.trainable_stages == "auto" else cfg.trainable_stages
    # frames one at a time (no clips): the difference stem is built so the encoder's weights fit the
    # fine-tuning stage's; a temporal shift has no weights and nothing to shift here
    encoder = create_encoder(m.encoder, m.pretrained, stages, channels_last=m.channels_last,
                             frame_differences=m.frame_differences)
    encoder.check_image_size(recipe.data.image_size)
    model = TrailerModel(encoder, {}, {}, head_hidden=1, head_dropout=0.0)  # the encoder alone
    model = sync_batchnorm(model, settings, recipe.run.sync_batchnorm).to(device)
    compile_encoder(model, recipe.run.compile)
    simclr, views = build_pretrain_objective(recipe, model)
    simclr.to(device)
    knn_train, knn_val = labeled_pool(samples), [s for s in split_samples(samples, "val") if s.is_labeled()]

    def validate(evaluated: nn.Module) -> tuple[dict[str, Any], None]:  # every process probes all of val
        return {"knn": knn_probe(evaluated.encoder, knn_train, knn_val, specs, recipe, device, settings.amp_dtype,
                                 cfg.knn_k)}, None

    stage = Stage(model, [simclr], adam_optimizers([simclr], model, "separate", cfg.lr, cfg.weight_decay),
                  build_pretrain_streams(recipe, samples, pin_memory=device.type == "cuda"),
                  {name: view.to(device) for name, view in views.items()}, validate, validate_first=True,
                  record={"stage": "pretrain"})
    train_stage(stage, settings, run_dir / "pretrain", resume, progress)
    path = encoder_path(run_dir)
    weights = sharding.full_state_dict(encoder.model)  # whole, also when FSDP sharded it (every process)
    if settings.process.main:
        save_encoder(path, m.encoder, weights)
    distributed.barrier()  # fine-tuning reads the encoder on every process
    return path
