"""The supervised objective: every task's loss on the labeled trailers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from semisup.objectives.base import Objective, ObjectiveOutput, StepBatch, StepContext

if TYPE_CHECKING:
    from semisup.models import TrailerModel


class Supervised(Objective):
    """The sum over tasks of each task's loss (Asymmetric Loss for multi-label tasks,
    cross-entropy with its imbalance options for multi-class ones) on the labeled
    view of the labeled trailers; a trailer unlabeled for a task is left out of that
    task's loss.

    Args:
        losses: each task's loss by task name.
    """

    stream = "labeled"

    def __init__(self, losses: dict[str, nn.Module], lr: float = 0.0) -> None:
        super().__init__("supervised", lr=lr)
        self.losses = nn.ModuleDict(losses)

    def forward(self, batch: StepBatch, model: "TrailerModel", context: StepContext) -> ObjectiveOutput:
        frames = batch.view("labeled")
        with context.autocast():
            logits = model(frames, batch.owner, batch.num_trailers)
        loss = sum(loss(logits[name], batch.targets[name], batch.has_label[name])
                   for name, loss in self.losses.items())
        return ObjectiveOutput(torch.as_tensor(loss), {}, len(frames))

    def trained_parameters(self, model: "TrailerModel") -> list[nn.Parameter]:
        return model.supervised_parameters()
