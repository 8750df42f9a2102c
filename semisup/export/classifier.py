"""The whole trailer model as one module that exporters trace: frames in, probabilities out.

:class:`~semisup.models.TrailerModel` takes normalised frames packed across trailers with an
``owner`` index (trailers of a batch may have different frame counts). A deployed model is
easier to call with a plain tensor: ``B`` trailers of ``T`` frames each, as the decoder gives
them (uint8 RGB, channels last). :class:`TrailerClassifier` adds what happens around the
network at inference: the pixel normalisation in front, each task's probabilities (sigmoid
for multi-label tasks, softmax for one-label tasks) behind. The stored decision rule is not
part of the graph; it travels in the metadata (:mod:`semisup.export.card`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from semisup.augment import FrameNormalize
from semisup.data.samples import TaskSpec
from semisup.evaluate.inference import probabilities
from semisup.models import TrailerModel


class TrailerClassifier(nn.Module):
    """Per-task probabilities of ``B`` trailers of ``T`` frames each.

    Args:
        model: a trained trailer model (its pretext heads are not used).
        tasks: the tasks, in the order of the outputs.

    Example:
        >>> from semisup.models import create_encoder
        >>> from semisup.models.aggregators import build_aggregator
        >>> encoder = create_encoder("test_resnet", False, "all")
        >>> model = TrailerModel(encoder, {"genres": build_aggregator("mean", {}, encoder.num_features)},
        ...                      {"genres": 3}, 8, 0.0).eval()
        >>> classifier = TrailerClassifier(model, [TaskSpec("genres", ("a", "b", "c"), "multilabel")])
        >>> [p.shape for p in classifier(torch.zeros(2, 5, 32, 32, 3, dtype=torch.uint8))]
        [torch.Size([2, 3])]
    """

    def __init__(self, model: TrailerModel, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.model = model
        self.tasks = [(t.name, t.kind) for t in tasks]
        self.normalize = FrameNormalize(model.encoder.mean, model.encoder.std)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args: frames ``(B, T, H, W, 3)`` uint8 RGB, each trailer's in time order.

        Returns:
            per task (in the order given), ``(B, C_task)`` float32 probabilities.
        """
        b, t = frames.shape[0], frames.shape[1]
        pixels = self.normalize(frames.flatten(0, 1).permute(0, 3, 1, 2))
        features = self.model.encoder.forward_clips(pixels.reshape(b, t, *pixels.shape[1:])).float()
        outputs = []
        for name, kind in self.tasks:
            outputs.append(probabilities(self.model.heads[name](self.model.aggregators[name].forward_unpadded(features)),
                                         kind))
        return tuple(outputs)
