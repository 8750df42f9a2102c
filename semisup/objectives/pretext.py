"""Pretext tasks as objectives: the adapter that keeps every :class:`~semisup.pretext.PretextTask`
plug-in working unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from semisup.objectives.base import Objective, ObjectiveOutput, StepBatch, StepContext

if TYPE_CHECKING:
    from semisup.models import TrailerModel


def clip_frames(clips: torch.Tensor, frames: int) -> torch.Tensor:
    """The ``frames`` evenly spaced frames (in time order) of ``(B, T, ...)`` clips,
    for a pretext task that asked for fewer frames than the stream carries.

    Example:
        >>> clip_frames(torch.arange(8).view(1, 8), 2).tolist()
        [[2, 6]]
    """
    t = clips.shape[1]
    if frames >= t:
        return clips
    return clips[:, ((torch.arange(frames) + 0.5) * t / frames).long()]


class Pretext(Objective):
    """A pretext task (its head lives in ``model.pretext[key]``) on the ``pretext`` view of
    the unlabeled clips: frames augmented without flips, shared by every pretext task.

    Args:
        key: the task's key in ``model.pretext`` (see :func:`~semisup.pretext.pretext_key`).
        weight, lr: its loss weight (joint mode) and learning rate (separate mode; 0 = optim.lr).
    """

    stream = "unlabeled"

    def __init__(self, key: str, weight: float = 1.0, lr: float = 0.0) -> None:
        super().__init__(f"pretext/{key}", weight, lr, group="pretext")
        self.key = key

    def forward(self, batch: StepBatch, model: "TrailerModel", context: StepContext) -> ObjectiveOutput:
        task = model.pretext[self.key]
        encoded = 0
        clips = clip_frames(batch.clips(batch.view("pretext")), task.frames)
        length = clips.shape[1]

        def encode(images: torch.Tensor) -> torch.Tensor:
            nonlocal encoded
            encoded += len(images)
            # a task that reads time encodes whole clips, flattened in clip order: an encoder that
            # sees motion (frame differences, temporal shift) reads them as clips of `length`
            owner = None
            if task.reads_time and len(images) % length == 0:
                owner = torch.arange(len(images) // length, device=images.device).repeat_interleave(length)
            return model.encode(images, owner)

        with context.autocast():
            out = task(clips, encode)
        return ObjectiveOutput(out.loss, {"accuracy": out.accuracy.item()}, encoded)

    def trained_parameters(self, model: "TrailerModel") -> list[nn.Parameter]:
        return model.pretext_parameters(self.key)
