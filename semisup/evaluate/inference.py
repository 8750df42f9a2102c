"""Run a trained model over a loader and collect its predictions."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from semisup.data.samples import TaskSpec
from semisup.device import autocast
from semisup.evaluate.predictions import Predictions
from semisup.models import TrailerModel


@torch.no_grad()
def predict(model: TrailerModel, loader: DataLoader, normalize: torch.nn.Module, specs: Sequence[TaskSpec],
            device: torch.device, amp_dtype: torch.dtype | None = None) -> Predictions:
    """Probabilities of every task for every trailer the loader yields.

    Args:
        model: the network (switched to eval mode here).
        loader: yields :class:`~semisup.data.loaders.PackedBatch`; its dataset's
            ``samples`` give the ids.
        normalize: uint8 frames -> normalised float frames.
        specs: the tasks, for their vocabularies.
        device: where to compute.
        amp_dtype: autocast dtype, or None for fp32.

    Returns:
        :class:`Predictions` in loader order; trailers without a readable frame
        are left out and listed in ``unreadable``, skipped frames in ``skipped_frames``.
    """
    model.eval()
    samples = loader.dataset.samples
    ids: list[str] = []
    unreadable: list[str] = []
    skipped: list[str] = []
    scores: dict[str, list[np.ndarray]] = {s.name: [] for s in specs}
    targets: dict[str, list[np.ndarray]] = {s.name: [] for s in specs}
    labeled: dict[str, list[np.ndarray]] = {s.name: [] for s in specs}
    for batch in loader:
        unreadable += [samples[i].id for i in batch.unreadable]
        skipped += batch.bad_frames
        if batch.num_trailers == 0:
            continue
        frames = normalize(batch.frames.to(device, non_blocking=True))
        with autocast(device, amp_dtype):
            logits = model(frames, batch.owner.to(device), batch.num_trailers)
        ids += [samples[i].id for i in batch.indices.tolist()]
        for spec in specs:
            scores[spec.name].append(probabilities(logits[spec.name], spec.kind).cpu().numpy())
            targets[spec.name].append(batch.targets[spec.name].numpy())
            labeled[spec.name].append(batch.has_label[spec.name].numpy())
    def cat(parts: list[np.ndarray], width: int) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
    return Predictions(
        ids=ids,
        labels={s.name: s.labels for s in specs},
        scores={s.name: cat(scores[s.name], len(s.labels)) for s in specs},
        targets={s.name: cat(targets[s.name], len(s.labels)) for s in specs},
        labeled={s.name: np.concatenate(labeled[s.name]) if labeled[s.name] else np.zeros(0, bool) for s in specs},
        kinds={s.name: s.kind for s in specs},
        unreadable=unreadable,
        skipped_frames=skipped,
    )


def probabilities(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Sigmoid per label (multi-label) or softmax over classes (multi-class), in fp32."""
    logits = logits.float()
    return torch.sigmoid(logits) if kind == "multilabel" else torch.softmax(logits, dim=1)


Featurize = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
"""Packed normalised frames ``(N, C, H, W)``, owner ``(N,)`` and B -> trailer features ``(B, D)``."""


def mean_frame_features(encoder: torch.nn.Module) -> Featurize:
    """Trailer features as the mean of the encoder's frame features (the frozen embedding)."""
    from semisup.models.aggregators import MeanAggregator, pad_packed

    pool = MeanAggregator(MeanAggregator.Options(), getattr(encoder, "num_features", 0))
    encoder.eval()
    return lambda frames, owner, b: pool(*pad_packed(encoder(frames, owner).float(), owner, b))


def task_features(model: TrailerModel, task: str) -> Featurize:
    """Trailer features as task ``task``'s trained aggregator sees them (the input of its head)."""
    model.eval()
    return lambda frames, owner, b: model.trailer_features(frames, owner, b)[task]


@torch.no_grad()
def embed(featurize: Featurize, loader: DataLoader, normalize: torch.nn.Module, device: torch.device,
          amp_dtype: torch.dtype | None = None) -> tuple[list[str], np.ndarray]:
    """Trailer embeddings of every trailer the loader yields.

    Args:
        featurize: e.g. :func:`mean_frame_features` or :func:`task_features`.
        loader: yields :class:`~semisup.data.loaders.PackedBatch`.
        normalize: uint8 frames -> normalised float frames.

    Returns:
        Sample ids and their ``(N, D)`` float32 embeddings, in loader order
        (trailers without a readable frame are left out).
    """
    samples = loader.dataset.samples
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for batch in loader:
        if batch.num_trailers == 0:
            continue
        with autocast(device, amp_dtype):
            features = featurize(normalize(batch.frames.to(device, non_blocking=True)), batch.owner.to(device),
                                 batch.num_trailers)
        parts.append(features.float().cpu().numpy())
        ids += [samples[i].id for i in batch.indices.tolist()]
    return ids, (np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32))
