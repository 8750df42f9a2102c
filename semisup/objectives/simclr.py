"""SimCLR as an objective: two views of every unlabeled frame, NT-Xent (lightly).

Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020. The encoder plus lightly's
``SimCLRProjectionHead`` embed two kornia views of every frame
(``"contrastive"``, see :class:`~semisup.augment.ContrastiveViews`); lightly's
``NTXentLoss`` pulls the two views of a frame together and pushes the other
frames of the batch away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from semisup.objectives.base import Objective, ObjectiveOutput, StepBatch, StepContext

if TYPE_CHECKING:
    from semisup.models import TrailerModel


class SimCLR(Objective):
    """NT-Xent over two views of every frame of the unlabeled clips.

    Args:
        feature_dim: the encoder's feature size.
        hidden, out_dim: the projection head's widths.
        temperature: NT-Xent temperature.
    """

    stream = "unlabeled"

    def __init__(self, feature_dim: int, hidden: int, out_dim: int, temperature: float, lr: float = 0.0) -> None:
        super().__init__("simclr", lr=lr)
        self.head = SimCLRProjectionHead(feature_dim, hidden, out_dim)
        self.criterion = NTXentLoss(temperature=temperature,  # negatives from every process of a data-parallel run
                                    gather_distributed=torch.distributed.is_available())

    def forward(self, batch: StepBatch, model: "TrailerModel", context: StepContext) -> ObjectiveOutput:
        first, second = batch.view("contrastive"), batch.view("contrastive", copy=1)
        if len(first) < 2:  # NT-Xent needs two frames: a zero loss, still computed from every weight it trains
            with context.autocast():  # (both views through the head at once: its BatchNorm needs two rows)
                z = self.head(model.encode(torch.cat([first, second])))
            return ObjectiveOutput(0.0 * z.float().sum(), {}, 2 * len(first))
        with context.autocast():
            z1, z2 = self.head(model.encode(first)), self.head(model.encode(second))
        return ObjectiveOutput(self.criterion(z1.float(), z2.float()), {}, 2 * len(first))

    def trained_parameters(self, model: "TrailerModel") -> list[nn.Parameter]:
        return model.encoder.trainable_parameters() + list(self.head.parameters())
